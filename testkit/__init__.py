"""Test and benchmark assets built from product code: Piper speech and word error rates, avatar bundles and
Wav2Lip checkpoints, aiortc client peers. Shared by ``tests/`` and ``bench/``; imports nothing from ``tests/``."""
