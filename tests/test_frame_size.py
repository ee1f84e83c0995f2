"""The one rule for the size frames are sent at: the page's shown size and the ladder's half size, the smaller,
never above the avatar's own, aspect ratio kept, in steps of 32 px of width, even sides."""

from __future__ import annotations

import pytest

from realtime.frame_size import FrameSize, ShownSize


@pytest.mark.parametrize(
    ("size", "picture", "sent"),
    [
        (FrameSize(), (512, 512), (512, 512)),  # nothing said: the avatar's own size
        (FrameSize(shown=ShownSize(256, 256)), (512, 512), (256, 256)),
        (FrameSize(shown=ShownSize(300, 300)), (512, 512), (320, 320)),  # rounded up: never less than shown
        (FrameSize(shown=ShownSize(358, 844)), (512, 512), (384, 384)),  # a phone's tall box: the width decides
        (FrameSize(shown=ShownSize(1170, 1170)), (512, 512), (512, 512)),  # a 3× phone screen: never upscaled
        (FrameSize(shown=ShownSize(450, 253)), (1280, 720), (480, 270)),  # aspect ratio kept
        (FrameSize(shown=ShownSize(900, 200)), (1280, 720), (384, 216)),  # a wide short box: the height decides
        (FrameSize(shown=ShownSize(1, 1)), (512, 512), (64, 64)),  # a picture still worth encoding
        (FrameSize(half=True), (512, 512), (256, 256)),  # the degradation ladder's half size
        (FrameSize(half=True), (721, 405), (360, 202)),  # even sides
        (FrameSize(shown=ShownSize(200, 200), half=True), (512, 512), (224, 224)),  # the smaller wins
        (FrameSize(shown=ShownSize(400, 400), half=True), (512, 512), (256, 256)),
    ],
)
def test_the_sent_size_is_the_smallest_bound_in_steps(size, picture, sent):
    assert size.for_picture(*picture) == sent


def test_a_window_resized_by_a_few_pixels_keeps_one_size():
    """The encoder reopens (with a keyframe) at each new size: 481–512 px wide boxes all get 512."""
    sizes = {FrameSize(shown=ShownSize(width, width)).for_picture(720, 720) for width in range(481, 513)}
    assert sizes == {(512, 512)}
