"""Where bundles live in an avatar's folder, and how a new one appears there whole or not at all.

A bundle is written into a hidden ``.partial-*`` folder and renamed into place at the end, so a build that is
killed (worker lost, time limit, host restart) leaves only a partial folder no reader ever opens; the next
build of that avatar removes it and starts again.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from realtime.avatar.format import BUNDLE_VERSION

PARTIAL_PREFIX = ".partial-"
_REPLACED_PREFIX = ".replaced-"
_BUNDLE_NAME = re.compile(r"^\d+-[0-9a-f]{12}$")


def bundle_folder_name(checksum: str) -> str:
    """``<version>-<first 12 hex of the source SHA-256>``: a new source or a new format is a new folder."""
    return f"{BUNDLE_VERSION}-{checksum[:12]}"


@contextmanager
def staging(avatar_dir: Path) -> Iterator[Path]:
    """A fresh hidden folder to build in; removed if the build raises."""
    avatar_dir.mkdir(parents=True, exist_ok=True)
    folder = avatar_dir / f"{PARTIAL_PREFIX}{uuid.uuid4().hex}"
    folder.mkdir()
    try:
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def publish(staged: Path, final: Path) -> None:
    """Rename a finished folder into place. An older bundle at ``final`` is moved aside first and deleted:
    processes that have it memory-mapped keep reading their open files."""
    if final.exists():
        aside = final.with_name(f"{_REPLACED_PREFIX}{uuid.uuid4().hex}")
        final.rename(aside)
        staged.rename(final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        staged.rename(final)


def link_files(source: Path, staged: Path) -> None:
    """Give ``staged`` the files of the bundle at ``source``, sub-folders included: hard links (no copy,
    independent lifetimes: either avatar can be deleted), or copies where the storage cannot link."""
    for item in source.iterdir():
        if item.is_dir() and not item.is_symlink():  # engine extras live in sub-folders
            (staged / item.name).mkdir()
            link_files(item, staged / item.name)
            continue
        if not item.is_file():
            continue
        try:
            os.link(item, staged / item.name)
        except OSError:
            shutil.copy2(item, staged / item.name)


def discard_partials(avatar_dir: Path) -> None:
    """Remove what killed builds left. Call only while holding the avatar's build (its task id), so no live
    build's folder is removed."""
    _remove_dirs(avatar_dir, lambda name: name.startswith((PARTIAL_PREFIX, _REPLACED_PREFIX)))


def discard_other_bundles(avatar_dir: Path, keep: str) -> None:
    """Remove bundles built from an earlier upload or an older format, once ``keep`` is in place."""
    _remove_dirs(avatar_dir, lambda name: bool(_BUNDLE_NAME.match(name)) and name != keep)


def _remove_dirs(avatar_dir: Path, matches: Callable[[str], bool]) -> None:
    if not avatar_dir.is_dir():
        return
    for item in avatar_dir.iterdir():
        if item.is_dir() and matches(item.name):
            shutil.rmtree(item, ignore_errors=True)
