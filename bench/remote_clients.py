"""Live sessions in this process, each called by a receive-only aiortc client in a child process.

The benchmarks that measure the server (``bench.stage_costs``: CPU by stage,
``bench.memory``: RSS) keep the clients' decoding out of their numbers this
way: the child runs one client per session, the offer and answer cross a pipe,
and at the end the child reports how many video frames each client received
per second within a window the server names.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the client process imports this module too, and needs none of the server's
    from realtime.config import SessionConfig
    from realtime.pool import ModelPool
    from realtime.session import LiveSession

CLIENTS_JOIN_S = 15  # how long closing waits for the child process to exit


class RemoteClients:
    """The open sessions, and the pipe to the child process whose clients receive them."""

    def __init__(self, lives: list[LiveSession], connection: Connection) -> None:
        self.lives = lives
        self._connection = connection

    async def video_fps(self, window: tuple[float, float]) -> list[float]:
        """Each client's received video frames per second within ``window`` (wall-clock ``time.time()``); the
        clients then hang up. Call it once, at the end."""
        loop = asyncio.get_running_loop()
        self._connection.send(window)
        return await loop.run_in_executor(None, self._connection.recv)


@asynccontextmanager
async def sessions_with_remote_clients(
    config: SessionConfig, pool: ModelPool, sessions: int
) -> AsyncIterator[RemoteClients]:
    """Open ``sessions`` sessions of ``config`` on ``pool``, each connected to its client; close them all after."""
    from realtime.session import LiveSession
    from testkit.voice import RecordingEvents

    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    child = context.Process(target=client_process, args=(theirs, sessions))
    child.start()
    loop = asyncio.get_running_loop()
    lives: list[LiveSession] = []
    try:
        for _ in range(sessions):
            live = await LiveSession.open(config, pool, RecordingEvents())
            lives.append(live)
            offer = await loop.run_in_executor(None, ours.recv)
            ours.send(await live.accept_offer(offer))
        yield RemoteClients(lives, ours)
    finally:
        for live in lives:
            await live.close()
        await loop.run_in_executor(None, child.join, CLIENTS_JOIN_S)


# --- the client process -------------------------------------------------------------------------------------------


def client_process(connection: Connection, sessions: int) -> None:
    """Child process: ``sessions`` receive-only aiortc clients; the SDP crosses ``connection``."""
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]  # loopback only (FACTS.md)
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_clients(connection, sessions))


async def _clients(connection: Connection, sessions: int) -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError

    loop = asyncio.get_running_loop()
    arrivals: list[list[float]] = [[] for _ in range(sessions)]
    peers = []

    async def count(track: Any, index: int) -> None:
        try:
            while True:
                await track.recv()
                if track.kind == "video":
                    arrivals[index].append(time.time())
        except MediaStreamError:
            pass

    for index in range(sessions):
        peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        peer.on("track", lambda track, index=index: asyncio.ensure_future(count(track, index)))
        peer.addTransceiver("audio", direction="recvonly")
        peer.addTransceiver("video", direction="recvonly")
        await peer.setLocalDescription(await peer.createOffer())
        connection.send(peer.localDescription.sdp)
        answer = await loop.run_in_executor(None, connection.recv)
        await peer.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        peers.append(peer)
    window = await loop.run_in_executor(None, connection.recv)  # (start, end) in wall-clock time
    connection.send([sum(window[0] <= at < window[1] for at in times) / (window[1] - window[0]) for times in arrivals])
    for peer in peers:
        await peer.close()
