"""The per-session speech path: text → TTS → lip-sync features → render → player (DESIGN.md §3)."""

from .pipeline import PipelineFull, PipelineListener, PlayoutSettings, SpeechPipeline
from .tasks import TaskOwner

__all__ = ["PipelineFull", "PipelineListener", "PlayoutSettings", "SpeechPipeline", "TaskOwner"]
