"""The Wav2Lip generators as nn.Modules: the published 96×96 model and the 256×256 variant LiveTalking ships.

Layer for layer the published architectures, with the same attribute names and
nesting, so that a user's checkpoint loads with ``strict=True``: every block is
``conv_block`` (convolution + batch norm) followed by ReLU, optionally adding
its input back (``residual``). The 256 variant is the same U-Net one level
deeper (one more stride-2 encoder block and its decoder twin, a 4×4
bottleneck instead of 3×3); its audio encoder and output block are unchanged.

Inputs: faces (B, 6, S, S) = lower-half-masked target face and reference face,
BGR in [0, 1]; mels (B, 1, 80, 16). Output: (B, 3, S, S) BGR in [0, 1], S = ``face_size``.
"""

from __future__ import annotations

import torch
from torch import nn


class Conv2d(nn.Module):
    """Convolution, batch norm, ReLU; with ``residual`` the input is added before the ReLU (shapes must agree)."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int | tuple[int, int], padding: int, residual: bool = False
    ):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.BatchNorm2d(cout))
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class Conv2dTranspose(nn.Module):
    """Transposed convolution (upsampling), batch norm, ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int, output_padding: int = 0):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, kernel, stride, padding, output_padding), nn.BatchNorm2d(cout)
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))


def _down(cin: int, cout: int, residual_blocks: int) -> nn.Sequential:
    """Stride-2 convolution then ``residual_blocks`` same-size residual convolutions."""
    return nn.Sequential(Conv2d(cin, cout, 3, 2, 1), *(_res(cout) for _ in range(residual_blocks)))


def _up(cin: int, cout: int, residual_blocks: int) -> nn.Sequential:
    """Stride-2 transposed convolution (doubles the size) then residual convolutions."""
    return nn.Sequential(Conv2dTranspose(cin, cout, 3, 2, 1, 1), *(_res(cout) for _ in range(residual_blocks)))


def _res(channels: int) -> Conv2d:
    return Conv2d(channels, channels, 3, 1, 1, residual=True)


FACE_SIZES = (96, 256)


class Wav2Lip(nn.Module):
    """The generator: a U-Net whose bottleneck is the audio embedding, with the face encoder's maps as skips."""

    def __init__(self, face_size: int = 96) -> None:
        super().__init__()
        if face_size not in FACE_SIZES:
            raise ValueError(f"Wav2Lip generators exist for face sizes {FACE_SIZES}, not {face_size}")
        self.face_size = face_size
        deeper = face_size == 256
        # Spatial size after each block: 96, 48, 24, 12, 6, 3, 1 (256: 256, 128, …, 8, 4, 1).
        downs = [_down(16, 32, 2), _down(32, 64, 3), _down(64, 128, 2), _down(128, 256, 2), _down(256, 512, 1)]
        if deeper:
            downs.append(_down(512, 512, 1))
        bottleneck = 4 if deeper else 3
        self.face_encoder_blocks = nn.ModuleList(
            [
                nn.Sequential(Conv2d(6, 16, 7, 1, 3)),
                *downs,
                nn.Sequential(Conv2d(512, 512, bottleneck, 1, 0), Conv2d(512, 512, 1, 1, 0)),
            ]
        )
        # 80×16 mel window → 512×1×1.
        self.audio_encoder = nn.Sequential(
            Conv2d(1, 32, 3, 1, 1),
            _res(32),
            _res(32),
            Conv2d(32, 64, 3, (3, 1), 1),
            _res(64),
            _res(64),
            Conv2d(64, 128, 3, 3, 1),
            _res(128),
            _res(128),
            Conv2d(128, 256, 3, (3, 2), 1),
            _res(256),
            Conv2d(256, 512, 3, 1, 0),
            Conv2d(512, 512, 1, 1, 0),
        )
        # Each block's input is the previous output concatenated with the matching encoder map (hence cin sums).
        ups = [_up(1024, 512, 2), _up(768, 384, 2), _up(512, 256, 2), _up(320, 128, 2), _up(160, 64, 2)]
        if deeper:
            ups.insert(0, _up(1024, 512, 1))
        self.face_decoder_blocks = nn.ModuleList(
            [
                nn.Sequential(Conv2d(512, 512, 1, 1, 0)),
                nn.Sequential(Conv2dTranspose(1024, 512, bottleneck, 1, 0), _res(512)),
                *ups,
            ]
        )
        self.output_block = nn.Sequential(Conv2d(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1, 1, 0), nn.Sigmoid())

    def forward(self, mels: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        skips = []
        x = faces
        for block in self.face_encoder_blocks:
            x = block(x)
            skips.append(x)
        x = self.audio_encoder(mels)
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), skips.pop()), dim=1)
        return self.output_block(x)


def face_size_of(state: dict[str, torch.Tensor]) -> int:
    """Which generator a checkpoint's weights are for: the 256 variant has an eighth encoder block."""
    return 256 if any(key.startswith("face_encoder_blocks.7.") for key in state) else 96
