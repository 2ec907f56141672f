"""Preprocessing cache: every pair resized once to ``size x size`` and stored as a folder dataset of PNGs.

The cache folder is itself a valid folder dataset (``images/<stem>.png``, ``masks/<stem>.png``, plus the
source's ``groups.csv`` and ``dataset.yaml`` when present), so :class:`lgmsnet.data.SegmentationDataset` reads
it like any other. Images are resized with Pillow's antialiased bilinear filter (area-like when shrinking) and
keep their colour mode (RGB or grey); masks are binarised first (``mask > mask_threshold``), resized with
nearest neighbour and stored as {0, 255}.

``index.json`` records the source fingerprint, the size and the threshold; :func:`build_cache` reuses the
cache when all three match and rebuilds it otherwise. A build writes to a temporary sibling folder and swaps
it in with renames, so an interrupted build never leaves a half-written cache behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lgmsnet.data._fs import swap_in_dir, temporary_sibling
from lgmsnet.data.folder import (
    DEFAULT_MASK_THRESHOLD,
    GROUPS_FILE,
    INFO_FILE,
    DatasetError,
    Pair,
    _check_mask_threshold,
    _read_array,
    _size_mismatch,
    dataset_fingerprint,
    read_mask,
    scan_pairs,
)

__all__ = ["CACHE_FORMAT_VERSION", "INDEX_FILE", "build_cache", "read_cache_index"]

logger = logging.getLogger(__name__)

INDEX_FILE = "index.json"
CACHE_FORMAT_VERSION = 1


def read_cache_index(cache_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``index.json`` of a cache folder, or None when absent or unreadable."""
    path = Path(cache_dir) / INDEX_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _cache_one(pair: Pair, out_dir: Path, size: int, mask_threshold: int) -> None:
    image = _read_array(pair.image_path)
    mask = read_mask(pair.mask_path, mask_threshold)
    if image.shape[:2] != mask.shape:
        raise DatasetError(_size_mismatch(pair, image.shape, mask.shape))
    resized = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR)
    resized.save(out_dir / "images" / f"{pair.stem}.png", compress_level=1)
    mask_image = Image.fromarray(mask * np.uint8(255)).resize((size, size), Image.Resampling.NEAREST)
    mask_image.save(out_dir / "masks" / f"{pair.stem}.png", compress_level=1)


def build_cache(
    data_dir: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    size: int,
    *,
    mask_threshold: int = DEFAULT_MASK_THRESHOLD,
    num_workers: int | None = None,
) -> Path:
    """Resize a folder dataset once to ``size x size`` PNGs, or reuse an up-to-date cache.

    Args:
        data_dir: source folder dataset.
        cache_dir: cache folder; must be absent, empty, or a previous cache (it has an ``index.json``).
        size: output height and width in pixels.
        mask_threshold: mask binarisation threshold applied before resizing (see :func:`lgmsnet.data.read_mask`).
        num_workers: decoding threads; None uses ``min(4, os.cpu_count())``.

    Returns:
        ``cache_dir`` as a Path.

    Raises:
        DatasetError: invalid source dataset, unreadable file, size mismatch, or ``cache_dir`` is a non-empty
            folder that is not a cache (it is never deleted).
        ValueError: ``size`` or ``mask_threshold`` out of range.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int (pixels), got {size!r}; e.g. size=256.")
    _check_mask_threshold(mask_threshold)
    source, target = Path(data_dir), Path(cache_dir)
    pairs = scan_pairs(source)
    fingerprint = dataset_fingerprint(source)
    wanted = {
        "format_version": CACHE_FORMAT_VERSION,
        "fingerprint": fingerprint,
        "size": size,
        "mask_threshold": mask_threshold,
    }
    index = read_cache_index(target)
    up_to_date = index is not None and all(index.get(k) == v for k, v in wanted.items())
    if up_to_date and (target / "images").is_dir() and (target / "masks").is_dir():
        logger.info("Reusing cache %s (fingerprint %s, size %d)", target, fingerprint[:12], size)
        return target
    if target.exists() and index is None and (not target.is_dir() or any(target.iterdir())):
        raise DatasetError(
            f"Cache folder {target} exists and is not an lgmsnet cache (no readable {INDEX_FILE}); "
            "it is left untouched. Pass an empty or new folder as cache_dir."
        )
    if index is not None:
        changed = sorted(k for k, v in wanted.items() if index.get(k) != v)
        logger.info("Rebuilding cache %s: %s changed", target, ", ".join(changed) or "folders missing")

    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = temporary_sibling(target, "tmp")
    try:
        (tmp_dir / "images").mkdir(parents=True)
        (tmp_dir / "masks").mkdir()
        workers = num_workers if num_workers is not None else min(4, os.cpu_count() or 1)
        if workers <= 1:
            for pair in pairs:
                _cache_one(pair, tmp_dir, size, mask_threshold)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(lambda p: _cache_one(p, tmp_dir, size, mask_threshold), pairs))
        for name in (GROUPS_FILE, INFO_FILE):
            if (source / name).is_file():
                shutil.copyfile(source / name, tmp_dir / name)
        index_data = {
            **wanted,
            "n": len(pairs),
            "source": str(source.resolve()),
            "image_interpolation": "bilinear (Pillow, antialiased)",
            "mask_interpolation": "nearest, after binarisation; stored as 0/255",
        }
        (tmp_dir / INDEX_FILE).write_text(json.dumps(index_data, indent=1) + "\n", encoding="utf-8")
        swap_in_dir(tmp_dir, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    elapsed = time.perf_counter() - started
    logger.info("Built cache %s: %d pairs at %dx%d in %.1f s", target, len(pairs), size, size, elapsed)
    return target
