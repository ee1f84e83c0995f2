"""Engine plug-ins (ASR, LLM, TTS, lip-sync), each behind a small async interface of its kind."""
