"""Lip-sync engines: audio features and avatar frames in, talking frames out, in batches."""
