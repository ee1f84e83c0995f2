"""Capacity and latency against the real server: daphne started as the README does, clients in this process.

One run, in order:

1. The server: a fresh data folder, ``migrate``, ``setup_demo`` (the demo
   tenant, its talking avatar and the "Demo" role: Piper, pocketsphinx, the
   echo LLM, the default lip-sync, 25 fps), an API key, then ``--processes``
   daphne processes (the README's recommendation for a 2-core machine: one).
   Sessions are opened over REST and signalled over the WebSocket, round-robin
   over the processes, exactly as an integration does.
2. Latency, one session at a time on an otherwise idle server, measured at this
   client: offer → first video frame; voice end → first reply audio (and first
   changed video frame) over ``--turns`` spoken questions; REST ``say`` → first
   audible audio; REST ``interrupt`` → silence over ``--interrupts`` cuts, split
   into the server's share (its own histograms, read from ``/metrics``: the
   channel layer's hop, then the interrupt's arrival → the end of speech in the
   audio handed to aiortc) and the client's (the silent packet's RTP arrival,
   then aiortc's jitter buffer and decoder until ``recv`` returns it).
3. Capacity: ``--sessions`` sessions (comma list) all speaking a long text at
   once. Server CPU is read from the daphne processes (``psutil``), so this
   process's clients are not charged to it; a session holds when its client
   received ≥ 90 % of 25 frames a second. These clients count the frames
   they receive without decoding them (their codec work would take the server's
   cores on this machine).
4. Where a speaking session's CPU goes: ``bench.stage_costs`` in a child
   process (server in-process, clients in a further process).

    python -m bench.capacity [--processes 1] [--sessions 2,4,8] [--turns 10] [--interrupts 10] [--window 8]

On a shared machine read the ratios and the CPU figures, not the wall clock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import psutil
from prometheus_client.parser import text_string_to_metric_families

from testkit.ports import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[1]
FPS = 25
VOICED_RMS = 300  # int16 RMS of a received 20-ms packet that carries speech (the avatar's silence decodes near 0)
QUIET_BLOCKS = 8  # a received packet is judged in 2.5-ms blocks for where its sound ends (an interrupt's fade-out)
PACKET_S = 0.02
CHANGED = 6.0  # mean |difference| of a 16×16 block (of a 128-px grey thumbnail) above which the picture changed
LONG_TEXT = (
    "Good morning, and welcome to the station. I am the astronaut who looks after this module. "
    "Today we check the air, the water and the power, one system after another. "
    "If anything looks wrong, I will tell you what it means and what we should do next. "
) * 4
SAY_TEXT = "Hello there, it is good to see you."
KEY_SCRIPT = (
    "import json; from avatars_app.demo_data import ensure_demo_data; "
    "from livehuman_site.tenancy.models import TenantAPIKey; d = ensure_demo_data(); "
    "d.tenant.max_concurrent_sessions = 1000; d.tenant.save(); "
    "_, key = TenantAPIKey.objects.create_key(name='bench', tenant=d.tenant); "
    "print(json.dumps({'role': d.role.pk, 'key': key}))"
)


# --- the server ---------------------------------------------------------------------------------------------------


@dataclass
class Server:
    urls: list[str]
    processes: list[subprocess.Popen]
    role: int
    key: str
    metrics_token: str

    async def histogram(self, http: aiohttp.ClientSession, name: str, **labels: str) -> list[tuple[float, float]]:
        """The ``(le, cumulative count)`` buckets of histogram ``name`` (with ``labels``), summed over the processes."""
        buckets: dict[float, float] = {}
        for url in self.urls:
            headers = {"Authorization": f"Bearer {self.metrics_token}"}
            async with http.get(f"{url}/metrics", headers=headers) as response:
                response.raise_for_status()
                text = await response.text()
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    wanted = all(sample.labels.get(k) == v for k, v in labels.items())
                    if sample.name == f"{name}_bucket" and wanted:
                        le = float(sample.labels["le"])
                        buckets[le] = buckets.get(le, 0.0) + sample.value
        return sorted(buckets.items())

    def cpu_seconds(self) -> float:
        """CPU time the daphne processes (and their children) have used so far."""
        total = 0.0
        for process in self.processes:
            for member in [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]:
                times = member.cpu_times()
                total += times.user + times.system
        return total

    def rss_mb(self) -> float:
        return sum(psutil.Process(process.pid).memory_info().rss for process in self.processes) / 2**20


@contextmanager
def running_server(folder: Path, processes: int, redis_url: str | None, repo: Path = REPO) -> Iterator[Server]:
    """Set up a fresh demo in ``folder`` and run ``processes`` daphne processes of the checkout ``repo`` on it."""
    env = dict(os.environ, LIVEHUMAN_DATA_DIR=str(folder), PYTHONUNBUFFERED="1", LOG_LEVEL="WARNING")
    env["LIVEHUMAN_MAX_SESSIONS_PER_WORKER"] = "64"  # the capacity points go past the default cap of 8
    env["LIVEHUMAN_METRICS_TOKEN"] = metrics_token = secrets.token_urlsafe(16)
    env.pop("DATABASE_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    python = [sys.executable, "manage.py"]
    subprocess.run([*python, "migrate", "-v", "0"], cwd=repo, env=env, check=True)
    subprocess.run([*python, "setup_demo"], cwd=repo, env=env, check=True, capture_output=True)
    made = subprocess.run([*python, "shell", "-c", KEY_SCRIPT], cwd=repo, env=env, check=True, capture_output=True)
    credentials = json.loads(made.stdout.decode().strip().splitlines()[-1])
    ports = [free_port() for _ in range(processes)]
    with ExitStack() as stack:
        started = []
        for port in ports:
            log = stack.enter_context((folder / f"daphne-{port}.log").open("wb"))
            command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
            process = subprocess.Popen(
                [*command, "livehuman_site.asgi:application"],
                cwd=repo,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            stack.callback(_stop, process)
            started.append(process)
        for port, process in zip(ports, started, strict=True):
            wait_for_port(port, 120, process)
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        try:
            yield Server(urls, started, credentials["role"], credentials["key"], metrics_token)
        except Exception:
            for port in ports:  # what the server said, before the folder goes
                tail = (folder / f"daphne-{port}.log").read_text(errors="replace").splitlines()[-40:]
                print(f"--- daphne on {port}, last lines:", *tail, sep="\n")
            raise


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- a client -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Packet:
    """A received 20-ms audio packet: when ``recv`` returned it, its RMS, its RTP timestamp, and how far into it its
    sound ends (0: silent throughout; 20 ms: sounding at its end)."""

    at: float
    level: float
    pts: int
    quiet_from: float

    @classmethod
    def of(cls, at: float, pts: int, samples: np.ndarray) -> Packet:
        blocks = np.sqrt(np.mean(samples.reshape(QUIET_BLOCKS, -1) ** 2, axis=1))
        loud = np.flatnonzero(blocks >= VOICED_RMS)
        quiet_from = (loud[-1] + 1) * PACKET_S / QUIET_BLOCKS if len(loud) else 0.0
        return cls(at, float(np.sqrt(np.mean(samples**2))), pts, quiet_from)


@dataclass
class Seen:
    """What one client received: audio packets, each audio packet's RTP arrival (by its frame's ``pts``), video frames
    (arrival) and, while decoding, a grey thumbnail of the latest frames."""

    audio: list[Packet] = field(default_factory=list)
    rtp_arrivals: dict[int, float] = field(default_factory=dict)
    video: list[float] = field(default_factory=list)
    pictures: deque[tuple[float, np.ndarray]] = field(default_factory=lambda: deque(maxlen=10 * FPS))

    def first_audio(self, after: float, voiced: bool = True) -> float | None:
        return next((p.at for p in self.audio if p.at >= after and (p.level >= VOICED_RMS) == voiced), None)

    def silent_from(self, after: float, packets: int = 10) -> Packet | None:
        """The packet after ``after`` in which the sound ends for at least ``packets`` packets: its sound ends in
        it (a fade-out) or before it, and the ``packets`` − 1 after it are silent throughout."""
        start, run = None, 0
        for packet in self.audio:
            if packet.at < after:
                continue
            if start is not None and packet.quiet_from == 0:
                run += 1
            elif packet.quiet_from < PACKET_S:
                start, run = packet, 1
            else:
                start, run = None, 0
            if run == packets:
                return start
        return None

    def first_changed_frame(self, after: float) -> float | None:
        """Arrival of the first frame after ``after`` that differs from the last one before it (the mouth moved)."""
        before = [picture for at, picture in self.pictures if at < after]
        if not before:
            return None
        return next((at for at, picture in self.pictures if at >= after and changed(picture, before[-1])), None)

    def fps_between(self, start: float, end: float) -> float:
        return sum(start <= at < end for at in self.video) / (end - start)


def thumbnail(frame: Any) -> np.ndarray:
    return frame.to_ndarray(format="gray", width=128, height=128).astype(np.int16)


def changed(picture: np.ndarray, reference: np.ndarray) -> bool:
    blocks = np.abs(picture - reference).reshape(8, 16, 8, 16).mean(axis=(1, 3))
    return bool(blocks.max() > CHANGED)


class Client:
    """One session as an integration runs it: REST to open it and to command it, the WebSocket for signalling,
    an aiortc peer for the media (with a speaking mic when ``mic`` is given)."""

    def __init__(self, http: aiohttp.ClientSession, server: Server, base: str, mic: Any = None) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection

        self.http, self.server, self.base = http, server, base
        self.headers = {"Authorization": f"Api-Key {server.key}"}
        self.seen = Seen()
        self.peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.peer.on("track", self._on_track)
        if mic is not None:
            self.peer.addTrack(mic)
        else:
            self.peer.addTransceiver("audio", direction="recvonly")
        self.peer.addTransceiver("video", direction="recvonly")
        self.decode = True
        self.session_id = ""
        self.events: list[tuple[float, dict]] = []
        self._tasks: list[asyncio.Task] = []
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def open(self) -> float:
        """Open the session and make the call; the seconds from sending the offer to the first video frame."""
        from aiortc import RTCSessionDescription

        async with self.http.post(
            f"{self.base}/api/v1/sessions/", json={"role": self.server.role}, headers=self.headers
        ) as response:
            body = await response.json()
            if response.status != 201:
                raise RuntimeError(f"session refused: {response.status} {body}")
        self.session_id = body["id"]
        ws_base = self.base.replace("http://", "ws://")
        self._ws = await self.http.ws_connect(f"{ws_base}{body['ws_url']}")  # its single-use ticket included
        self._tasks.append(asyncio.ensure_future(self._read_socket()))
        await self.peer.setLocalDescription(await self.peer.createOffer())
        loop = asyncio.get_running_loop()
        offered = loop.time()
        await self._ws.send_json({"type": "offer", "sdp": self.peer.localDescription.sdp})
        answer = await self.wait_for("answer")
        await self.peer.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        async with asyncio.timeout(30):
            while not self.seen.video:
                await asyncio.sleep(0.005)
        return self.seen.video[0] - offered

    async def wait_for(self, kind: str, after: float = 0.0, timeout: float = 60, **fields: Any) -> dict:
        async with asyncio.timeout(timeout):
            while True:
                for at, event in self.events:
                    if at >= after and event.get("type") == kind and all(event.get(k) == v for k, v in fields.items()):
                        return event
                await asyncio.sleep(0.01)

    async def command(self, name: str, payload: dict | None = None) -> None:
        url = f"{self.base}/api/v1/sessions/{self.session_id}/{name}/"
        async with self.http.post(url, json=payload or {}, headers=self.headers) as response:
            if response.status != 202:
                raise RuntimeError(f"{name} refused: {response.status} {await response.text()}")

    async def idle(self, timeout: float = 90) -> None:
        """Wait until the avatar has stopped speaking (the greeting, an answer)."""
        async with asyncio.timeout(timeout):
            while True:
                states = [event["state"] for _, event in self.events if event.get("type") == "state"]
                if states and states[-1] == "idle":
                    return
                await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self.peer.close()
        if self._ws is not None:
            await self._ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _read_socket(self) -> None:
        assert self._ws is not None
        loop = asyncio.get_running_loop()
        async for message in self._ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.events.append((loop.time(), json.loads(message.data)))

    def _on_track(self, track: Any) -> None:
        if track.kind == "audio":
            self._note_rtp_arrivals(next(t.receiver for t in self.peer.getTransceivers() if t.receiver.track is track))
        self._tasks.append(asyncio.ensure_future(self._read(track)))

    def _note_rtp_arrivals(self, receiver: Any) -> None:
        """Note when each audio packet reaches the receiver, before aiortc's jitter buffer holds it, by its RTP
        timestamp counted from the first packet's (the decoder stamps the frames it returns so)."""
        handle, loop = receiver._handle_rtp_packet, asyncio.get_running_loop()
        first: list[int] = []

        async def noted(packet: Any, arrival_time_ms: int) -> None:
            first[:] = first or [packet.timestamp]
            self.seen.rtp_arrivals[(packet.timestamp - first[0]) % 2**32] = loop.time()
            await handle(packet, arrival_time_ms)

        receiver._handle_rtp_packet = noted

    async def _read(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        loop = asyncio.get_running_loop()
        try:
            while True:
                frame = await track.recv()
                at = loop.time()
                if track.kind == "audio":
                    samples = frame.to_ndarray().astype(np.float64) if self.decode else np.zeros(QUIET_BLOCKS)
                    self.seen.audio.append(Packet.of(at, frame.pts, samples))
                else:
                    self.seen.video.append(at)
                    if self.decode:
                        self.seen.pictures.append((at, thumbnail(frame)))
        except MediaStreamError:
            pass


def count_without_decoding() -> None:
    """From now on this process's receivers count frames without decoding them (one blank frame stands for each)."""
    import aiortc.rtcrtpreceiver
    import av

    blank_video = av.VideoFrame(16, 16, "yuv420p")
    blank_audio = av.AudioFrame(format="s16", layout="stereo", samples=960)
    blank_audio.sample_rate = 48_000
    for plane in blank_audio.planes:
        plane.update(bytes(plane.buffer_size))

    class Counting:
        def __init__(self, kind: str) -> None:
            self.blank = blank_video if kind == "video" else blank_audio

        def decode(self, encoded_frame: Any) -> list[Any]:
            self.blank.pts = encoded_frame.timestamp
            return [self.blank]

    aiortc.rtcrtpreceiver.get_decoder = lambda codec: Counting("video" if codec.mimeType.startswith("video") else "a")


# --- the measurements -------------------------------------------------------------------------------------------


def percentiles(values: list[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {1000 * statistics.median(ordered):.0f} ms, p95 {1000 * p95:.0f} ms (n={len(ordered)})"


def histogram_percentiles(buckets: list[tuple[float, float]]) -> str:
    """p50 and p95 of a Prometheus histogram's ``(le, cumulative count)`` buckets, interpolated within the bucket
    as ``histogram_quantile`` does."""
    count = buckets[-1][1] if buckets else 0
    if not count:
        return "no samples"

    def quantile(q: float) -> float:
        rank, lower, below = q * count, 0.0, 0.0
        for le, cumulative in buckets:
            if cumulative >= rank:
                if le == float("inf"):
                    return lower
                return lower + (le - lower) * (rank - below) / max(cumulative - below, 1e-9)
            lower, below = le, cumulative
        return lower

    return f"p50 {1000 * quantile(0.5):.1f} ms, p95 {1000 * quantile(0.95):.1f} ms (n={count:.0f}, from its buckets)"


async def latency(http: aiohttp.ClientSession, server: Server, turns: int, interrupts: int) -> None:
    from testkit.speech import SpeechSynthesizer
    from testkit.voice import SpeakingTrack

    questions = [
        "What is the weather like in Paris today?",
        "Turn on the lights in the living room.",
        "How long does it take to walk to the station?",
        "Tell me a story about the moon.",
        "Is it going to rain tomorrow morning?",
    ]
    speech = SpeechSynthesizer()
    loop = asyncio.get_running_loop()
    offers: list[float] = []
    to_audio: list[float] = []
    to_frame: list[float] = []
    say_audio: list[float] = []
    to_silence: list[float] = []
    to_rtp: list[float] = []  # REST sent → the RTP arrival of the packet in which the sound ends
    in_receiver: list[float] = []  # that packet's RTP arrival → aiortc's recv returns it (jitter buffer, decoder)
    answered: list[float] = []  # REST sent → its 202 (the view, both channel-layer hops and the cut itself)
    # A worker preloads every active role when its first session starts: that session pays for the loading.
    first = Client(http, server, server.urls[0])
    cold = await first.open()
    await first.close()
    await asyncio.sleep(5.0)
    mic = SpeakingTrack()
    client = Client(http, server, server.urls[0], mic=mic)
    try:
        offers.append(await client.open())
        await client.idle()  # the role's greeting
        await asyncio.sleep(1.0)  # the mic's VAD and ASR models are loaded by now
        for index in range(turns + 1):
            spoken = mic.say(speech(questions[index % len(questions)], lead_s=0.3, tail_s=0.3))
            await spoken.finished.wait()
            voice_end = spoken.voice_end
            await client.wait_for("timings", after=voice_end, timeout=30)
            await client.idle()
            audio_at = client.seen.first_audio(voice_end)
            frame_at = client.seen.first_changed_frame(voice_end)
            if index and audio_at is not None:  # the first turn pays for onnxruntime's first Piper run
                to_audio.append(audio_at - voice_end)
                if frame_at is not None:
                    to_frame.append(frame_at - voice_end)
            await asyncio.sleep(0.3)
        for _ in range(5):
            sent = loop.time()
            await client.command("say", {"text": SAY_TEXT})
            async with asyncio.timeout(30):
                while client.seen.first_audio(sent) is None:
                    await asyncio.sleep(0.01)
            say_audio.append(client.seen.first_audio(sent) - sent)
            await client.idle()
            await asyncio.sleep(0.3)
        for _ in range(interrupts):
            await client.command("say", {"text": LONG_TEXT})
            async with asyncio.timeout(30):
                while client.seen.first_audio(loop.time() - 0.5) is None:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            cut = loop.time()
            await client.command("interrupt")
            answered.append(loop.time() - cut)
            await client.idle()
            await asyncio.sleep(0.5)
            if (packet := client.seen.silent_from(cut)) is not None:
                to_silence.append(packet.at + packet.quiet_from - cut)
                if (arrived := client.seen.rtp_arrivals.get(packet.pts)) is not None:
                    to_rtp.append(arrived + packet.quiet_from - cut)
                    in_receiver.append(packet.at - arrived)
        hop = await server.histogram(http, "livehuman_command_hop_seconds", command="interrupt")
        on_server = await server.histogram(http, "livehuman_interrupt_silence_seconds")
    finally:
        mic.stop()
        await client.close()
    print("\n2. latency at the client, one session on an idle server")
    print(f"   offer → first video frame:            {percentiles(offers)} (preloaded; {1000 * cold:.0f} ms cold)")
    print(f"   voice end → first reply audio:         {percentiles(to_audio)}   (goal p50 700, p95 1000)")
    print(f"   voice end → first changed frame:       {percentiles(to_frame)}")
    print(f"   REST say → first audible audio:        {percentiles(say_audio)}   (goal 400)")
    print(f"   REST interrupt → silence:              {percentiles(to_silence)}   (goal 120, jitter buffer included)")
    print(f"     client: REST sent → its 202 (view, owner and back): {percentiles(answered)}")
    print(f"     server: REST → owner (channel layer): {histogram_percentiles(hop)}")
    print(f"     server: owner → speech ends in what aiortc takes: {histogram_percentiles(on_server)}   (goal < 20)")
    print(f"     client: REST sent → that packet's RTP arrival: {percentiles(to_rtp)}")
    print(f"     client: RTP arrival → out of aiortc's jitter buffer and decoder: {percentiles(in_receiver)}")


async def hold(http: aiohttp.ClientSession, server: Server, sessions: int, window: float) -> tuple[bool, float]:
    """Run ``sessions`` speaking sessions; did every client get ≥ 90 % of 25 fps, and the server's CPU ms per
    speaking session per second."""
    loop = asyncio.get_running_loop()
    clients = [Client(http, server, server.urls[n % len(server.urls)]) for n in range(sessions)]
    offers: list[float] = []
    try:
        for client in clients:
            client.decode = False
            offers.append(await client.open())
        for client in clients:
            await client.idle()
        for client in clients:
            await client.command("say", {"text": LONG_TEXT})
        await asyncio.sleep(3.0)  # every session past its first sentence's start-up
        rss = server.rss_mb()
        cpu, start = server.cpu_seconds(), loop.time()
        await asyncio.sleep(window)
        cpu, end = server.cpu_seconds() - cpu, loop.time()
        received = [client.seen.fps_between(start, end) for client in clients]
        speaking = [
            [event["state"] for _, event in client.events if event.get("type") == "state"][-1] == "speaking"
            for client in clients
        ]
    finally:
        for client in clients:
            await client.close()
    per_session = 1000 * cpu / (end - start) / sessions
    # A starved server skips frames (the tracks never send late), and a skipped frame costs nothing: scaled to
    # 25 fps, the figure says what a session at full rate costs.
    at_full_rate = per_session * FPS / max(statistics.mean(received), 1.0)
    held = min(received) >= 0.9 * FPS and all(speaking)
    print(
        f"   {sessions:>2} sessions: {'held' if held else 'NOT held'}: received fps min {min(received):.1f}, "
        f"mean {statistics.mean(received):.1f}; still speaking {sum(speaking)}/{sessions}; server CPU "
        f"{cpu / (end - start):.2f} cores = {per_session:.0f} ms/s per speaking session, {at_full_rate:.0f} at 25 fps "
        f"(→ {2000 / at_full_rate:.1f} sessions on 2 cores); server RSS {rss:.0f} MB; offer → first frame "
        f"{percentiles(offers)}"
    )
    return held, at_full_rate


async def main(args: argparse.Namespace) -> None:
    import aioice.ice
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livehuman_site.settings")
    django.setup()  # the speech fixtures use the project's audio helpers
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]  # loopback only (FACTS.md)
    print(
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (a shared machine: read the CPU figures "
        f"and ratios); {args.processes} daphne process(es)"
    )
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_server(Path(tmp), args.processes, args.redis_url, args.server_repo) as server,
    ):
        print(f"1. server up: {', '.join(server.urls)}, RSS {server.rss_mb():.0f} MB after start-up")
        async with aiohttp.ClientSession() as http:
            if args.turns:
                await latency(http, server, args.turns, args.interrupts)
            count_without_decoding()
            print(f"\n3. capacity: sessions all speaking, {args.window:g} s each point")
            for sessions in [int(n) for n in args.sessions.split(",") if n]:
                await hold(http, server, sessions, args.window)
    if args.stages:
        print(f"\n4. where a speaking session's CPU goes (bench.stage_costs, {args.stages} sessions)")
        subprocess.run(
            [sys.executable, "-m", "bench.stage_costs", "--sessions", str(args.stages), "--seconds", str(args.window)],
            cwd=REPO,
            check=False,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=1, help="daphne processes (more than one needs Redis)")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"), help="channel layer for >1 process")
    parser.add_argument("--sessions", default="2,4,8", help="session counts of the capacity points")
    parser.add_argument("--turns", type=int, default=10, help="spoken turns of the latency part (0: skip it)")
    parser.add_argument("--interrupts", type=int, default=10, help="REST interrupts of the latency part")
    parser.add_argument("--window", type=float, default=8.0, help="seconds each capacity point is measured")
    parser.add_argument("--stages", type=int, default=4, help="sessions of the stage-cost part (0: skip it)")
    parser.add_argument("--server-repo", type=Path, default=REPO, help="run the server from another checkout")
    asyncio.run(main(parser.parse_args()))
