"""The product's own Prometheus metrics, in this process's default registry (``prometheus_client``, no Django).

Each worker process (daphne, Celery) keeps its own counts; the operator scrapes every process (README
"Metrics"). Labels stay few and bounded: tenant slugs, states, stage names and error codes, never session ids.
The live-session gauges are not kept by hand: a ``SessionCounter`` counts the process's sessions at scrape
time, so it cannot drift from what runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

STAGES = ("vad_decision", "asr_tail", "llm_first_token", "tts_first_audio", "first_frame")

STAGE_LATENCY = Histogram(
    "livehuman_stage_latency_seconds",
    "Time each stage of an answer took: VAD decision (end of speech to end of turn), ASR tail (end of turn to "
    "final text), LLM first token, TTS first audio and first lip-synced frame (each from the stage before).",
    ["stage"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
)
FPS_DELIVERED = Histogram(
    "livehuman_session_fps_delivered",
    "Video frames a session sent in each second of its life, by the role's target fps.",
    ["target"],
    buckets=(5, 10, 12.5, 15, 20, 22.5, 24, 25, 27.5, 30, 40, 45, 50, 60),
)
FPS_RATIO = Histogram(
    "livehuman_session_fps_ratio",
    "Delivered over target fps for each second of each session (1: the role's full rate).",
    buckets=(0.25, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 1.0, 1.02),
)
LIPSYNC_BATCH_SIZE = Histogram(
    "livehuman_lipsync_batch_size",
    "Frames in each lip-sync model call, gathered across sessions.",
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64),
)
INTERRUPTS = Counter("livehuman_interrupts_total", "Answers cut short: interrupt, barge-in or say with interrupt.")
# Fine buckets below 40 ms: an interrupt's own share is the rest of the 20 ms packet on air plus what the cut costs.
FINE_BUCKETS = (0.002, 0.004, 0.006, 0.008, 0.01, 0.012, 0.014, 0.016, 0.018, 0.02, 0.025, 0.03, 0.04, 0.06, 0.1, 0.25)
INTERRUPT_SILENCE = Histogram(
    "livehuman_interrupt_silence_seconds",
    "From an interrupt reaching the session's process to the end of speech in the audio handed to the sender "
    "(the first packet taken after the cut, plus its fade-out).",
    buckets=FINE_BUCKETS,
)
COMMAND_HOP = Histogram(
    "livehuman_command_hop_seconds",
    "From a REST command handed to the channel layer to its arrival at the process that owns the session, by "
    "command (read from the wall clock: across hosts it includes their clocks' offset).",
    ["command"],
    buckets=FINE_BUCKETS,
)
ERRORS = Counter("livehuman_errors_total", "Errors reported to clients, by code.", ["code"])
DEGRADE_STEPS = Counter(
    "livehuman_degrade_steps_total",
    "Degradation ladder steps taken by sessions, by direction (down, up) and what the step changed (fps, "
    "resolution, engine).",
    ["direction", "step"],
)
HEAP_TRIM_SECONDS = Histogram(
    "livehuman_heap_trim_seconds",
    "How long each trim of the C heap took (glibc's malloc_trim, a moment after each session ends: the free "
    "pages its frames left go back to the operating system).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
)
AVATAR_BUILDS = Counter("livehuman_avatar_builds_total", "Avatar builds finished, by outcome.", ["outcome"])
AVATAR_BUILD_SECONDS = Histogram(
    "livehuman_avatar_build_seconds",
    "How long avatar builds took, by outcome.",
    ["outcome"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800),
)


class Timings(Protocol):
    """Milliseconds from the start of a turn to each point (``realtime.session.MessageTimings``)."""

    asr_ms: int | None
    llm_first_token_ms: int | None
    tts_first_audio_ms: int | None
    first_frame_ms: int | None


def observe_answer(timings: Timings) -> None:
    """Each stage's own time, from the cumulative points of one answer; stages it never reached are skipped."""
    previous = 0
    points = (
        ("asr_tail", timings.asr_ms),
        ("llm_first_token", timings.llm_first_token_ms),
        ("tts_first_audio", timings.tts_first_audio_ms),
        ("first_frame", timings.first_frame_ms),
    )
    for stage, at_ms in points:
        if at_ms is None:
            continue
        STAGE_LATENCY.labels(stage).observe(max(0, at_ms - previous) / 1000)
        previous = at_ms


def observe_vad_decision(seconds: float) -> None:
    STAGE_LATENCY.labels("vad_decision").observe(max(0.0, seconds))


class FpsMeter:
    """Counts a session's sent video frames and reports each whole second to the fps histograms.

    ``target`` is read at each report: a role switch changes it in place.
    """

    def __init__(self, target: Callable[[], int]) -> None:
        self._target = target
        self._started: float | None = None
        self._frames = 0

    def frame_sent(self, now: float) -> None:
        if self._started is None:
            self._started = now
        self._frames += 1
        elapsed = now - self._started
        if elapsed >= 1.0:
            target = self._target()
            delivered = (self._frames - 1) / elapsed  # frames between the first and this one, inclusive of gaps
            FPS_DELIVERED.labels(str(target)).observe(delivered)
            FPS_RATIO.observe(delivered / target)
            self._started, self._frames = now, 1


class SessionCounter(Collector):
    """A gauge of this process's live sessions by ``labels``, counted when scraped: ``sessions`` yields one
    tuple of label values per live session."""

    def __init__(
        self, name: str, documentation: str, labels: list[str], sessions: Callable[[], Iterable[tuple[str, ...]]]
    ) -> None:
        self._name, self._documentation, self._labels = name, documentation, labels
        self._sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self._name, self._documentation, labels=self._labels)
        counts: dict[tuple[str, ...], int] = {}
        for key in self._sessions():
            counts[key] = counts.get(key, 0) + 1
        for key, count in sorted(counts.items()):
            family.add_metric(list(key), count)
        yield family


def live_sessions_gauge(sessions: Callable[[], Iterable[tuple[str, str]]]) -> SessionCounter:
    """``livehuman_live_sessions{state, tenant}``; ``sessions`` yields (state, tenant) per live session
    ("connecting" for a place reserved before its media starts)."""
    return SessionCounter(
        "livehuman_live_sessions",
        "Live sessions in this process, by speaking state and tenant.",
        ["state", "tenant"],
        sessions,
    )


def degrade_levels_gauge(sessions: Callable[[], Iterable[tuple[str, str]]]) -> SessionCounter:
    """``livehuman_session_degrade_level{level, step}``; ``sessions`` yields (level, step) per live session."""
    return SessionCounter(
        "livehuman_session_degrade_level",
        "Live sessions in this process by their level on the degradation ladder (0: the role's full quality) and "
        "what that level changed (top, fps, resolution, engine).",
        ["level", "step"],
        sessions,
    )
