"""Audio → mouth shape without weights: loudness opens the jaw, spectral shape picks the viseme.

Three vowel visemes cover what a 2-D warp can show: open "a" (jaw down),
wide "e/i" (corners out, jaw half down) and round "o/u" (corners in). Each
frame's shape is a blend of them weighted from two band-energy ratios of the
Wav2Lip mel (so engines share one feature computation):

- wide: share of 1.7–3.5 kHz energy in 0.2–3.5 kHz (a high second formant: e, i);
- open: share of 0.55–1.1 kHz energy in 0.2–1.1 kHz (a high first formant: a, o).

Thresholds were read off Piper's English voice (its "see", "me", "bee" score
wide > 0.9, "ah", "hot" score open > 0.95, "who", "moon" < 0.45); they are
heuristics, not a trained model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ...audio import HOP, MEL_SILENCE, MIN_LEVEL_DB, mel_centre_frequencies
from .easing import smoothstep

SILENT_DBFS = -42.0  # RMS at or below this: mouth closed
LOUD_DBFS = -10.0  # RMS at or above this: mouth fully open (TTS output is peak-normalised; speech sits -35..-10)
CLOSED_BELOW = 0.03  # openness under this renders the frame unchanged


@dataclass(frozen=True)
class Viseme:
    """A target shape at full loudness: jaw drop and corner stretch, as fractions of the mouth box."""

    name: str
    jaw: float
    stretch: float  # > 0 corners out (wide), < 0 corners in (round)


OPEN_A = Viseme("open_a", jaw=1.0, stretch=0.05)
WIDE_E = Viseme("wide_e", jaw=0.5, stretch=0.55)
ROUND_O = Viseme("round_o", jaw=0.65, stretch=-0.6)


@dataclass(frozen=True)
class MouthShape:
    """What the warp draws for one frame. ``openness`` 0 is the avatar's own closed mouth."""

    openness: float
    jaw: float
    stretch: float

    @property
    def is_closed(self) -> bool:
        return self.openness < CLOSED_BELOW


CLOSED = MouthShape(0.0, 0.0, 0.0)


def mouth_shape(audio: np.ndarray, mel: np.ndarray) -> MouthShape:
    """The frame's mouth: ``audio`` (16 kHz float32, the frame's own samples) sets openness; the mel columns
    that span the same samples (the start of the frame's window) set the blend of visemes."""
    openness, jaw, stretch = mouth_shapes([audio], mel[None])[0]
    if openness < CLOSED_BELOW:
        return CLOSED
    return MouthShape(float(openness), float(jaw), float(stretch))


def mouth_shapes(audios: Sequence[np.ndarray], mels: np.ndarray) -> np.ndarray:
    """(B, 3) openness, jaw, stretch for a batch of frames at once: ``audios`` their samples, ``mels``
    (B, 80, 16) their windows. Frames under CLOSED_BELOW come back as all zeros."""
    out = np.zeros((len(audios), 3), np.float64)
    rms = np.array([np.sqrt(np.mean(np.square(a, dtype=np.float64))) if len(a) else 0.0 for a in audios])
    dbfs = 20 * np.log10(np.maximum(rms, 1e-9))
    openness = smoothstep((dbfs - SILENT_DBFS) / (LOUD_DBFS - SILENT_DBFS))
    columns = np.array([max(1, math.ceil(len(a) / HOP)) for a in audios])
    bands = _band_masks()
    for count in np.unique(columns):  # frames of one length share one vectorised pass
        rows = np.flatnonzero((columns == count) & (openness >= CLOSED_BELOW))
        if not len(rows):
            continue
        power = _mel_power(np.asarray(mels)[rows, :, :count]).mean(axis=2)
        wide = smoothstep((_ratio(power, bands["high"], bands["speech"]) - 0.35) / 0.35)
        open_ = smoothstep((_ratio(power, bands["f1_high"], bands["f1"]) - 0.3) / 0.5)
        weights = np.stack([wide, (1 - wide) * open_, (1 - wide) * (1 - open_)], axis=1)
        visemes = np.array([[v.jaw, v.stretch] for v in (WIDE_E, OPEN_A, ROUND_O)])
        jaw_stretch = weights @ visemes
        out[rows, 0] = openness[rows]
        out[rows, 1:] = jaw_stretch * openness[rows, None]
    return out


def _mel_power(mel: np.ndarray) -> np.ndarray:
    """Normalised mel ([-4, 4]) back to relative linear power per bin."""
    db = (mel - MEL_SILENCE) / (2 * -MEL_SILENCE) * -MIN_LEVEL_DB
    return np.power(10.0, db / 10.0)


@lru_cache(maxsize=1)
def _band_masks() -> dict[str, np.ndarray]:
    centres = mel_centre_frequencies()

    def band(low: float, high: float) -> np.ndarray:
        return (centres >= low) & (centres < high)

    return {
        "speech": band(200, 3500),
        "high": band(1700, 3500),
        "f1": band(200, 1100),
        "f1_high": band(550, 1100),
    }


def _ratio(power: np.ndarray, part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """Per row of (B, bins) ``power``: the share of ``part``'s energy in ``whole``'s."""
    return power[:, part].sum(axis=1) / np.maximum(power[:, whole].sum(axis=1), 1e-12)
