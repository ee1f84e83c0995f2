"""Download the FunASR models through ModelScope into local folders, and print the settings that point at them."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from realtime.engines.asr.funasr import INSTALL, PUNC_MODEL_ID, STREAMING_MODEL_ID, VAD_MODEL_ID

HUB = "modelscope.cn"
ENDPOINT_ENV = "MODELSCOPE_ENDPOINT"  # ModelScope's own client reads it too (modelscope_hub/config.py)
PROGRESS_STEP = 0.1  # a progress line per file at each further tenth downloaded


def progress_reporter(base: type, write) -> type:
    """A ModelScope progress callback class (``base``: theirs; instantiated per file) writing a line every tenth."""

    class Progress(base):
        def __init__(self, filename: str, file_size: int) -> None:
            super().__init__(filename, file_size)
            self.done = 0
            self.reported = 0.0

        def update(self, size: int) -> None:
            self.done += size
            share = self.done / self.file_size if self.file_size else 1.0
            if share >= self.reported + PROGRESS_STEP or share >= 1.0 > self.reported:
                self.reported = share
                write(f"  {self.filename}: {self.done / 1e6:.1f} of {self.file_size / 1e6:.1f} MB ({share:.0%})")

    return Progress


class Command(BaseCommand):
    help = (
        "Download FunASR's streaming Paraformer (Mandarin ASR), its punctuation model and its FSMN VAD model"
        " from ModelScope."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dest",
            type=Path,
            default=Path(settings.DATA_DIR) / "models" / "funasr",
            help="Folder to hold the models (default: <LIVEHUMAN_DATA_DIR>/models/funasr).",
        )
        parser.add_argument("--no-punc", action="store_true", help="Skip the punctuation model.")
        parser.add_argument(
            "--no-vad",
            action="store_true",
            help="Skip the FSMN VAD model (the live pipeline finds turns with silero-vad; FunASR's own"
            " long-audio transcription uses this one).",
        )

        parser.add_argument(
            "--endpoint",
            default=os.environ.get(ENDPOINT_ENV) or None,
            help=f"ModelScope hub to download from, e.g. a mirror (default: ${ENDPOINT_ENV}, else {HUB}).",
        )

    def handle(self, *args, dest: Path, no_punc: bool, no_vad: bool, endpoint: str | None, **options) -> None:
        try:
            from modelscope import snapshot_download
            from modelscope.hub.callback import ProgressCallback
        except ImportError:
            raise CommandError(f"ModelScope is not installed: `{INSTALL}` brings it; then run this again.") from None
        wanted = {"FUNASR_MODEL_DIR": STREAMING_MODEL_ID}
        if not no_punc:
            wanted["FUNASR_PUNC_MODEL_DIR"] = PUNC_MODEL_ID
        if not no_vad:
            wanted["VAD"] = VAD_MODEL_ID
        progress = progress_reporter(ProgressCallback, self.stdout.write)
        folders = {}
        for number, (setting, model_id) in enumerate(wanted.items(), start=1):
            folder = dest.resolve() / model_id.split("/")[-1]
            self.stdout.write(f"[{number}/{len(wanted)}] Downloading {model_id} into {folder} ...")
            self.stdout.flush()
            try:
                snapshot_download(model_id, local_dir=str(folder), progress_callbacks=[progress], endpoint=endpoint)
            # Network, HTTP and hub errors come in many types (requests, urllib3, modelscope's own).
            except Exception as exc:
                where = f" (here {endpoint}, from --endpoint or ${ENDPOINT_ENV})" if endpoint else " (HTTPS)"
                raise CommandError(
                    f"Could not download {model_id} from ModelScope: {exc}. This machine needs to reach {HUB}"
                    f"{where}; or run this command where it can and copy the folders under"
                    f" {dest.resolve()} here."
                ) from exc
            folders[setting] = folder
        self.stdout.write(self.style.SUCCESS("Done. Set these in the environment of the web workers:"))
        for setting, folder in folders.items():
            if setting == "VAD":
                self.stdout.write(f"(FSMN VAD, for FunASR's own long-audio transcription: {folder})")
            else:
                self.stdout.write(f"LIVEHUMAN_{setting}={folder}")
