"""Text-to-speech engines: text in, a stream of PCM chunks out."""
