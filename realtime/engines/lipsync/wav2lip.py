"""Wav2Lip lip-sync engine: a user-supplied generator checkpoint, batched inference, paste-back.

Two generators load from the same setting: the published 96×96 model and the
256×256 variant LiveTalking distributes; which one a file holds is read from
its weights. Both come in the public training format (a dict whose
"state_dict" keys may carry DataParallel's "module." prefix; a bare state dict
is accepted too), loaded once per (path, device) per process. The models were
trained on OpenCV's BGR images, so faces are flipped RGB→BGR on the way in and
back on the way out. Faces are cut from the frame at render time, at the
model's size, from the face box (face_crop.py), and pasted back through a
feathered lower-face mask.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ...audio import MEL_BINS, MEL_WINDOW
from ..base import EngineUnavailable
from ..loading import once_per_process
from .base import LipSyncEngine, LipSyncRequest
from .face_crop import crop_faces, face_box
from .paste import paste_face
from .wav2lip_model import Wav2Lip, face_size_of

SETTING_HINT = (
    "set LIVEHUMAN_WAV2LIP_CHECKPOINT (the WAV2LIP_CHECKPOINT setting) to a wav2lip.pth or wav2lip_gan.pth file"
)


def _checkpoint_state(path: Path) -> dict[str, torch.Tensor]:
    """The generator weights in the file, without DataParallel's "module." prefix."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise EngineUnavailable(
            f"Wav2Lip checkpoint {path} is unreadable ({type(exc).__name__}: {str(exc)[:200]}); {SETTING_HINT}"
        ) from None
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise EngineUnavailable(f"Wav2Lip checkpoint {path} holds no state_dict; {SETTING_HINT}")
    return {key.removeprefix("module."): value for key, value in state.items()}


def _summarise(keys: set[str]) -> str:
    return ", ".join(sorted(keys)[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


@once_per_process
def load_wav2lip(path: str, device: str) -> Wav2Lip:
    """The generator from ``path`` on ``device`` (fp16 on CUDA), in eval mode. Raises EngineUnavailable."""
    if not path:
        raise EngineUnavailable(f"The Wav2Lip engine needs a checkpoint: {SETTING_HINT}")
    file = Path(path)
    if not file.is_file():
        raise EngineUnavailable(f"Wav2Lip checkpoint {path} does not exist; {SETTING_HINT}")
    state = _checkpoint_state(file)
    model = Wav2Lip(face_size_of(state))
    expected = set(model.state_dict())
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise EngineUnavailable(
            f"{path} is not a Wav2Lip 96×96 or 256×256 generator checkpoint: "
            f"{len(missing)} weights missing ({_summarise(missing)}), "
            f"{len(unexpected)} unexpected ({_summarise(unexpected)}); {SETTING_HINT}"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # same names, different shapes
        size = model.face_size
        raise EngineUnavailable(f"{path} does not fit the Wav2Lip {size}×{size} generator: {str(exc)[:300]}") from None
    model.eval().to(device)
    if device.startswith("cuda"):
        model.half()
    return model


class Wav2LipLipSync(LipSyncEngine):
    """Wav2Lip over face crops at the model's size; one forward pass per batch, whatever avatars it mixes."""

    name = "wav2lip"

    def __init__(self, device: str = "cpu", checkpoint: str | Path = "") -> None:
        super().__init__(device)
        self.checkpoint = str(checkpoint)
        self.model = load_wav2lip(self.checkpoint, device)
        self.dtype = torch.float16 if device.startswith("cuda") else torch.float32
        self.face_size = self.model.face_size

    def render_batch(self, requests: Sequence[LipSyncRequest]) -> list[np.ndarray]:
        if not requests:
            return []
        frames = [r.avatar.frames[r.frame_index] for r in requests]
        boxes = [face_box(r.avatar, r.frame_index) for r in requests]
        faces_rgb = crop_faces(frames, boxes, self.face_size)
        mels = np.stack([r.mel for r in requests]).astype(np.float32)
        if mels.shape[1:] != (MEL_BINS, MEL_WINDOW):
            raise ValueError(f"Wav2Lip needs {MEL_BINS}×{MEL_WINDOW} mel windows, got {mels.shape[1:]}")
        generated_rgb = self.generate(faces_rgb, mels)
        return [paste_face(frame, face, box) for frame, face, box in zip(frames, generated_rgb, boxes, strict=True)]

    def generate(self, faces_rgb: np.ndarray, mels: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) RGB uint8 faces and (B, 80, 16) mels → (B, S, S, 3) RGB uint8 generated faces."""
        with torch.inference_mode():
            # uint8 crosses to the device (4× less than float), the scaling happens there
            faces = torch.from_numpy(np.ascontiguousarray(faces_rgb[..., ::-1])).to(self.device)  # RGB → BGR
            faces = faces.permute(0, 3, 1, 2).to(self.dtype) / 255.0
            masked = faces.clone()
            masked[:, :, self.face_size // 2 :] = 0  # the lower half is what the model must draw from the audio
            audio = torch.from_numpy(mels).to(self.device, self.dtype).unsqueeze(1)
            out = self.model(audio, torch.cat((masked, faces), dim=1))
            out = (out.float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return np.ascontiguousarray(out[..., ::-1])  # BGR → RGB
