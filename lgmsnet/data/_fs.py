"""Atomic file-system helpers shared by the data layer (private)."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from lgmsnet.fileio import atomic_write_text  # noqa: F401 - re-exported for the data layer

__all__: list[str] = []


def temporary_sibling(path: Path, tag: str) -> Path:
    """A fresh hidden path next to ``path`` (same file system, so renames are atomic)."""
    return path.with_name(f".{path.name}.{tag}-{uuid.uuid4().hex}")


def swap_in_dir(tmp_dir: Path, target: Path) -> None:
    """Replace folder ``target`` (if any) by ``tmp_dir`` with two renames, then delete the old folder."""
    old_dir = temporary_sibling(target, "old")
    if target.exists():
        os.rename(target, old_dir)
    os.rename(tmp_dir, target)
    shutil.rmtree(old_dir, ignore_errors=True)
