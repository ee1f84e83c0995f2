"""The size a session's video frames are sent at: the one place that decides it.

Encoding cost grows with pixels, and encoding is the largest share of a
session's CPU (``bench.stage_costs``). A browser shows the avatar in an element
sized by its layout — about 320 px wide on a phone, 450–600 px on a desktop —
so frames larger than that are encoded only for the browser to shrink them.
Two things bound the size, and the smaller wins:

- the page's **shown size**: its video element in device pixels (CSS px ×
  ``devicePixelRatio``), sent over the session's WebSocket (``video_size``);
  the picture fits inside it (``object-fit: contain``). None when no page said
  (API clients), or while an RTMP stream needs the whole picture;
- the degradation ladder's **half size** (``Level.half_size``).

Never larger than the avatar's own frames, aspect ratio kept. The width is
rounded up to a multiple of ``WIDTH_STEP`` (never below what is shown) so a
window dragged a few pixels does not reopen the encoder at every change, and
both sides are even (4:2:0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WIDTH_STEP = 32  # px: the sizes a shown size maps to (an encoder reopens, with a keyframe, at each new one)
MIN_WIDTH = 64  # px: however small the element, a picture still worth encoding
MAX_SHOWN = 8192  # device px: larger is no screen's element (the page's message is refused)


@dataclass(frozen=True)
class ShownSize:
    """The page's video element, in device pixels."""

    width: int
    height: int


@dataclass(frozen=True)
class FrameSize:
    """What bounds the frames the video track sends; ``for_picture`` applies it to a picture of the avatar."""

    shown: ShownSize | None = None
    half: bool = False

    def for_picture(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) to send a ``width`` × ``height`` picture at; the picture's own size when nothing
        bounds it below that."""
        scale = 0.5 if self.half else 1.0
        if self.shown is not None:
            fit = min(self.shown.width / width, self.shown.height / height)  # object-fit: contain
            stepped = max(MIN_WIDTH, math.ceil(fit * width / WIDTH_STEP) * WIDTH_STEP)
            scale = min(scale, stepped / width)
        if scale >= 1:
            return width, height
        return _even(width * scale), _even(height * scale)


def _even(side: float) -> int:
    return max(2, round(side / 2) * 2)
