"""Peer: one session's WebRTC signaling and peer connection — the page's offer answered with the avatar's audio
and video tracks, trickled ICE candidates, and the connection's fate reported to the session.

One browser peer connection per session (DESIGN.md §7). The session hears
when media first flows (``on_connected``: the greeting), when ICE fails
(``on_failed``: the session ends), and of each track the page sends
(``on_track``: the mic).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from .errors import SessionError
from .media_codecs import install_fast_encoders
from .net.ice import rtc_configuration

logger = logging.getLogger(__name__)
_BAD_SDP = (ValueError, AssertionError, IndexError, KeyError, TypeError)

CLOSE_TIMEOUT_S = 3.0  # a peer connection that will not close cleanly is abandoned: the session must end


class Peer:
    """The session's side of its one peer connection; ``connection`` is None until an offer is accepted."""

    def __init__(
        self,
        *,
        ice_servers: Sequence[Mapping[str, Any]],
        ice_transport_policy: str,
        tracks: Sequence[MediaStreamTrack],
        on_track: Callable[[MediaStreamTrack], None],
        on_connected: Callable[[], None],
        on_failed: Callable[[], None],
    ) -> None:
        self.ice_servers = ice_servers
        self.ice_transport_policy = ice_transport_policy
        self.tracks = tracks
        self.on_track = on_track
        self.on_connected = on_connected
        self.on_failed = on_failed
        self.connection: RTCPeerConnection | None = None
        self.media_started = False  # the connection has connected once

    async def accept_offer(self, sdp: str) -> str:
        """Answer the page's offer: our tracks out; its tracks in, when it sends any. Returns the answer's SDP."""
        if self.connection is not None:
            raise SessionError("already_connected", "This session already has a peer connection.")
        if "\nm=" not in "\n" + sdp.replace("\r\n", "\n"):
            raise SessionError("bad_offer", "The offer has no media section.")
        connection = self.connection = RTCPeerConnection(rtc_configuration(self.ice_servers, self.ice_transport_policy))
        connection.on("track", self.on_track)  # fires inside setRemoteDescription
        connection.on("connectionstatechange", self._state_changed)
        try:
            await connection.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            for track in self.tracks:
                connection.addTrack(track)
            await connection.setLocalDescription(await connection.createAnswer())
        except _BAD_SDP as exc:
            # aiortc reports unreadable SDP as ValueError, AssertionError or IndexError, from parsing or from
            # answering it; either way the page may send a corrected offer.
            self.connection = None
            await connection.close()
            raise SessionError("bad_offer", f"The offer could not be read ({type(exc).__name__}).") from exc
        install_fast_encoders(connection)
        return connection.localDescription.sdp

    def use_tracks(self, tracks: Sequence[MediaStreamTrack]) -> None:
        """Send these tracks instead (an audio and a video one): now, if connected, and in any later answer."""
        self.tracks = tuple(tracks)
        if self.connection is not None:
            by_kind = {track.kind: track for track in self.tracks}
            for sender in self.connection.getSenders():
                if sender.track is not None and sender.track.kind in by_kind:
                    sender.replaceTrack(by_kind[sender.track.kind])

    async def add_candidate(self, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None) -> None:
        """A trickled ICE candidate from the page; an empty one means the page has no more."""
        if self.connection is None:
            raise SessionError("no_offer", "Send the offer before ICE candidates.")
        if not candidate:
            await self.connection.addIceCandidate(None)
            return
        try:
            ice = candidate_from_sdp(candidate.removeprefix("candidate:"))
            ice.sdpMid = sdp_mid
            ice.sdpMLineIndex = sdp_mline_index
            await self.connection.addIceCandidate(ice)
        except _BAD_SDP as exc:
            raise SessionError("bad_candidate", f"The ICE candidate could not be read ({type(exc).__name__}).") from exc

    async def close(self) -> None:
        if self.connection is None:
            return
        try:
            await asyncio.wait_for(self.connection.close(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            logger.warning("a peer connection did not close in time")

    def _state_changed(self) -> None:
        if self.connection is None:
            return
        if self.connection.connectionState == "connected" and not self.media_started:
            self.media_started = True
            self.on_connected()
        elif self.connection.connectionState == "failed":
            self.on_failed()
