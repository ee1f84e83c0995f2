"""The per-session speech path: text → TTS → lip-sync features → render → player (DESIGN.md §3)."""

from .pipeline import MessageStream, PipelineFull, PipelineListener, PlayoutSettings, SpeechPipeline
from .tasks import TaskOwner

__all__ = ["MessageStream", "PipelineFull", "PipelineListener", "PlayoutSettings", "SpeechPipeline", "TaskOwner"]
