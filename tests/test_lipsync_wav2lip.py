"""Wav2Lip engine: the public checkpoint layout loads strictly through the user's path, batches render and paste
back inside the face box only, faces cross the model in BGR, and bad files fail with a message naming the setting.

The weights here are random: these tests check plumbing, never lip-sync quality.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from realtime.engines.base import EngineUnavailable
from realtime.engines.lipsync.base import LipSyncRequest
from realtime.engines.lipsync.face_crop import box_from_landmarks, crop_faces
from realtime.engines.lipsync.wav2lip import Wav2LipLipSync, load_wav2lip
from realtime.engines.lipsync.wav2lip_model import Wav2Lip
from realtime.engines.registry import engine_class
from sessions_app.session_factory import engine_options
from testkit.bundles import write_random_wav2lip_checkpoint


@pytest.fixture(params=[96, 256], ids=["wav2lip96", "livetalking256"])
def face_size(request):
    return request.param


@pytest.fixture
def checkpoint(face_size, tmp_path):
    """A random-weights file of each generator the engine loads: the published 96×96 and LiveTalking's 256×256."""
    return write_random_wav2lip_checkpoint(tmp_path / "wav2lip.pth", face_size=face_size)


def requests_for(bundle, indices, seed=0):
    rng = np.random.default_rng(seed)
    return [
        LipSyncRequest(
            avatar=bundle,
            frame_index=i,
            mel=rng.uniform(-4, 4, (80, 16)).astype(np.float32),
            audio=np.zeros(640, np.float32),
        )
        for i in indices
    ]


def test_registry_name():
    assert engine_class("lipsync", "wav2lip") is Wav2LipLipSync
    assert Wav2LipLipSync.name == "wav2lip"


def test_public_layout_loads_strictly_from_the_setting(checkpoint, face_size, settings):
    settings.LIVEHUMAN = {"WAV2LIP_CHECKPOINT": str(checkpoint)}
    engine = Wav2LipLipSync(**engine_options()["lipsync"]["wav2lip"])  # what this process's pool passes
    saved = torch.load(checkpoint, weights_only=True)["state_dict"]
    loaded = engine.model.state_dict()
    assert {"module." + key for key in loaded} == set(saved)
    for key in ("face_encoder_blocks.0.0.conv_block.0.weight", "audio_encoder.12.conv_block.1.running_var"):
        assert torch.equal(loaded[key], saved["module." + key])
    assert not engine.model.training
    assert engine.face_size == engine.model.face_size == face_size  # the variant is read from the weights
    assert engine.model.face_decoder_blocks[0][0].conv_block[0].weight.dtype == torch.float32  # fp32 on CPU


def test_model_is_loaded_once_per_path_and_device(checkpoint):
    assert Wav2LipLipSync(checkpoint=checkpoint).model is Wav2LipLipSync(checkpoint=checkpoint).model


def test_render_batch_pastes_inside_the_face_box_only(checkpoint, astronaut_bundle):
    engine = Wav2LipLipSync(checkpoint=checkpoint)
    indices = [0, 3, 5, 3]
    frames = engine.render_batch(requests_for(astronaut_bundle, indices))
    assert len(frames) == len(indices)
    for index, frame in zip(indices, frames, strict=True):
        source = astronaut_bundle.frames[index]
        assert frame.shape == source.shape and frame.dtype == np.uint8
        x1, y1, x2, y2 = astronaut_bundle.face_boxes[index]
        changed = np.any(frame != source, axis=2)
        assert changed[y1:y2, x1:x2].mean() > 0.2, "the lower face must be replaced"
        changed[y1:y2, x1:x2] = False
        assert not changed.any(), "pixels outside the face box must be untouched"
        assert not np.any(frame[y1 : y1 + (y2 - y1) // 3] != source[y1 : y1 + (y2 - y1) // 3]), "eyes stay as they are"


def test_batch_gives_the_same_frames_as_single_calls(checkpoint, astronaut_bundle):
    engine = Wav2LipLipSync(checkpoint=checkpoint)
    requests = requests_for(astronaut_bundle, [1, 2, 6], seed=3)
    batched = engine.render_batch(requests)
    for request, frame in zip(requests, batched, strict=True):
        (single,) = engine.render_batch([request])
        assert np.abs(single.astype(int) - frame.astype(int)).max() <= 1


class _EchoReference(nn.Module):
    """Returns the reference-face channels it was given and remembers its input: shows what the model sees."""

    def forward(self, mels, faces):
        self.seen = (mels.clone(), faces.clone())
        return faces[:, 3:6]


def test_faces_cross_the_model_in_bgr_with_the_lower_half_masked(checkpoint, face_size, astronaut_bundle):
    engine = Wav2LipLipSync(checkpoint=checkpoint)
    engine.model = echo = _EchoReference()
    crops = crop_faces(astronaut_bundle.frames[[2, 4]], astronaut_bundle.face_boxes[[2, 4]], face_size)
    mels = np.random.default_rng(1).uniform(-4, 4, (2, 80, 16)).astype(np.float32)
    out = engine.generate(crops, mels)
    np.testing.assert_array_equal(out, crops)  # RGB in, RGB out
    seen_mels, faces = echo.seen
    half = face_size // 2
    assert faces.shape == (2, 6, face_size, face_size) and seen_mels.shape == (2, 1, 80, 16)
    blue = torch.from_numpy(crops[..., 2].astype(np.float32) / 255)
    torch.testing.assert_close(faces[:, 3], blue)  # channel 0 of the reference is blue: BGR
    torch.testing.assert_close(faces[:, 0, :half], blue[:, :half])
    assert torch.all(faces[:, 0:3, half:] == 0)


def test_missing_or_unset_checkpoint_names_the_setting(tmp_path):
    with pytest.raises(EngineUnavailable, match="WAV2LIP_CHECKPOINT"):
        Wav2LipLipSync(checkpoint=tmp_path / "nope.pth")
    with pytest.raises(EngineUnavailable, match=r"needs a checkpoint.*WAV2LIP_CHECKPOINT"):
        Wav2LipLipSync()


def test_corrupt_file_is_engine_unavailable(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x02not really a checkpoint" * 10)
    with pytest.raises(EngineUnavailable, match=r"unreadable.*WAV2LIP_CHECKPOINT"):
        load_wav2lip(str(corrupt), "cpu")
    truncated = tmp_path / "truncated.pth"
    write_random_wav2lip_checkpoint(truncated)
    truncated.write_bytes(truncated.read_bytes()[:100_000])
    with pytest.raises(EngineUnavailable, match="unreadable"):
        load_wav2lip(str(truncated), "cpu")


def test_wrong_keys_or_shapes_are_engine_unavailable(tmp_path):
    other = tmp_path / "syncnet.pth"
    torch.save({"state_dict": nn.Linear(4, 2).state_dict()}, other)
    with pytest.raises(EngineUnavailable, match=r"not a Wav2Lip .* 352 weights missing .* 2 unexpected"):
        load_wav2lip(str(other), "cpu")

    state = Wav2Lip().state_dict()
    state["output_block.1.weight"] = torch.zeros(3, 16, 1, 1)
    reshaped = tmp_path / "reshaped.pth"
    torch.save({"state_dict": state}, reshaped)
    with pytest.raises(EngineUnavailable, match="does not fit"):
        load_wav2lip(str(reshaped), "cpu")


def test_face_box_from_the_face_mesh_spans_eyebrows_to_below_the_chin():
    """The crop Wav2Lip was trained on: the mesh's width, a fifth of a face height below the forehead point down
    to 5 % of a face height below the chin point, so its lower half holds the mouth and jaw."""
    points = np.zeros((468, 2), np.float32)
    points[:, 0] = np.linspace(100, 300, 468)
    points[:, 1] = 200
    points[10] = (200, 100)  # forehead
    points[152] = (200, 300)  # chin
    assert box_from_landmarks(points) == (100, 140, 300, 310)


def test_crop_replicates_edges_where_the_box_leaves_the_frame():
    frame = np.zeros((40, 40, 3), np.uint8)
    frame[:, 0] = 200  # the left column
    (crop,) = crop_faces([frame], [(-20, 0, 20, 40)], 8)
    assert crop[:, :4].min() >= 190 and crop[:, 5:].max() == 0
