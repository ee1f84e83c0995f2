"""Everything that runs per session and per process: engines, pipeline, media tracks, pool, signaling."""
