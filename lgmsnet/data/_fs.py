"""Atomic file-system helpers shared by the data layer (private)."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

__all__: list[str] = []


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


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
