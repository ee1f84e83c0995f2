"""Download the FunASR models through ModelScope into local folders, and print the settings that point at them."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from realtime.engines.asr.funasr import INSTALL, PUNC_MODEL_ID, STREAMING_MODEL_ID


class Command(BaseCommand):
    help = "Download FunASR's streaming paraformer (and its punctuation model) from ModelScope."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dest",
            type=Path,
            default=Path(settings.DATA_DIR) / "models" / "funasr",
            help="Folder to hold the models (default: <LIVEHUMAN_DATA_DIR>/models/funasr).",
        )
        parser.add_argument("--no-punc", action="store_true", help="Skip the punctuation model.")

    def handle(self, *args, dest: Path, no_punc: bool, **options) -> None:
        try:
            from modelscope import snapshot_download
        except ImportError:
            raise CommandError(f"ModelScope is not installed: `{INSTALL}` brings it; then run this again.") from None
        wanted = {"FUNASR_MODEL_DIR": STREAMING_MODEL_ID}
        if not no_punc:
            wanted["FUNASR_PUNC_MODEL_DIR"] = PUNC_MODEL_ID
        folders = {}
        for setting, model_id in wanted.items():
            folder = dest.resolve() / model_id.split("/")[-1]
            self.stdout.write(f"Downloading {model_id} into {folder} ...")
            try:
                snapshot_download(model_id, local_dir=str(folder))
            # Network, HTTP and hub errors come in many types (requests, urllib3, modelscope's own).
            except Exception as exc:
                raise CommandError(
                    f"Could not download {model_id} from ModelScope: {exc}. This machine needs to reach"
                    " modelscope.cn; or download the models where it can and copy the folders here."
                ) from exc
            folders[setting] = folder
        self.stdout.write(self.style.SUCCESS("Done. Set these in the environment of the web workers:"))
        for setting, folder in folders.items():
            self.stdout.write(f"LIVEHUMAN_{setting}={folder}")
