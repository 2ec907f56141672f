"""Data validation of a folder segmentation dataset with Great Expectations 1.x (issue 4, part 3).

Three layers, one report:

1. :func:`build_metadata_table` decodes every image and mask ONCE (in a process pool) and returns one row per
   pair: sizes, channels, sample type, mask grey levels, foreground fraction, per-channel intensity mean/std
   and 32-bin histograms, file sha256, perceptual hash (:func:`lgmsnet.data.image_dhash`), split and group.
   Statistics are EXACT: the full-resolution decode is kept (no reduced ``Image.draft`` decode) because the
   means and standard deviations come from Pillow's C histogram (``Image.histogram``), which is cheaper than the
   decode itself; JPEG masks are decoded straight to their luma plane. Only the dHash decodes JPEGs at reduced
   size, exactly as :func:`lgmsnet.data.make_splits` does, so that hashes agree with split manifests.
2. The expectation suite ``components/expectations/segmentation_dataset.json`` (kept in the repository) runs
   on that table in an ephemeral GX context (pandas data source, whole-dataframe batch definition, a
   ``ValidationDefinition`` and a ``Checkpoint`` whose ``UpdateDataDocsAction`` renders HTML data docs).
   Every expectation carries ``meta.rule`` and ``meta.severity`` (``error`` or ``warning``).
3. Checks a per-row table cannot express: image/mask pairing (missing masks, orphan masks, two files for one
   stem; collected, never raised), split-manifest consistency, near-duplicates ACROSS train/val/test (dHash
   Hamming distance <= ``hash_threshold``), ``groups.csv`` groups spanning splits, near-duplicates between the
   dataset and a zero-shot target dataset, and drift against a reference profile (:mod:`components.profile`).

Mask grey levels: the table holds ``non_binary_fraction`` (pixels neither 0 nor 255) and
``ambiguous_fraction`` (pixels at least ``mask_noise_margin`` = 32 grey levels away from both 0 and 255).
The ``mask_non_binary`` rule tests ``ambiguous_fraction``: JPEG masks carry compression noise right next to 0
and 255 (Kvasir-SEG: 0.77 % of pixels on average, up to 2.1 %; CVC-ClinicDB has faint grey annotation
artefacts up to 8 %), none of it mid-grey, whereas soft, anti-aliased or interpolated masks are.

Rules (default severity; change any with ``severity_overrides``): from the suite ``empty_dataset``,
``stem_unique``, ``decodable``, ``size_match``, ``channels``, ``min_size``, ``mask_non_binary``,
``foreground_fraction``, ``duplicate_file`` (error) and ``dtype``, ``empty_mask`` (warning); from the extra checks
(:data:`CHECK_RULES`) ``missing_mask``, ``orphan_mask``, ``duplicate_stem``, ``manifest_unknown_stem``,
``groups_file``, ``group_leakage``, ``split_leakage``, ``target_leakage`` (error) and ``manifest_unassigned``,
``manifest_fingerprint``, ``target_unreadable``, ``drift`` (warning). A data problem is a finding, never an
exception; only unusable arguments raise.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from components.profile import (
    CHANNELS,
    INTENSITY_BINS,
    DriftReport,
    DriftThresholds,
    Profile,
    compare_profiles,
    load_profile,
    profile_from_table,
    write_drift_report,
    write_profile,
)
from lgmsnet.data import (
    DEFAULT_HASH_THRESHOLD,
    IMAGE_EXTENSIONS,
    DatasetError,
    Pair,
    SplitManifest,
    dataset_fingerprint,
    hamming_distance,
    image_dhash,
    load_groups,
    load_manifest,
    near_duplicate_groups,
    read_image,
)
from lgmsnet.data.folder import group_image_files
from lgmsnet.fileio import atomic_write_text

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CHECK_RULES",
    "DEFAULT_MIN_SIZE",
    "DEFAULT_NON_BINARY_TOLERANCE",
    "METADATA_COLUMNS",
    "SEVERITIES",
    "SUITE_PATH",
    "Finding",
    "ValidationResult",
    "build_metadata_table",
    "default_severities",
    "load_severity_overrides",
    "load_suite_spec",
    "scan_layout",
    "validate_dataset",
]

logger = logging.getLogger(__name__)

SUITE_PATH = Path(__file__).resolve().parent / "expectations" / "segmentation_dataset.json"
SEVERITIES: tuple[str, str] = ("error", "warning")
DEFAULT_MIN_SIZE = 64
DEFAULT_NON_BINARY_TOLERANCE = 0.02
DEFAULT_MASK_NOISE_MARGIN = 32
SUMMARY_FORMAT_VERSION = 1
_FOREGROUND_ABOVE = 127  # as lgmsnet.data.read_mask: foreground is grey > 127
_SERIAL_BELOW = 16  # fewer pairs than this: no process pool
_SHOWN_VALUES = 6

# Rules checked outside GX, with their default severity.
CHECK_RULES: dict[str, str] = {
    "missing_mask": "error",  # an image without a mask of the same stem
    "orphan_mask": "error",  # a mask without an image of the same stem
    "duplicate_stem": "error",  # two files for one stem in images/ or masks/
    "manifest_unknown_stem": "error",  # the split manifest names a stem that is not a pair of the dataset
    "manifest_unassigned": "warning",  # a pair that is in no split of the manifest
    "manifest_fingerprint": "warning",  # the manifest was made for another version of the dataset
    "groups_file": "error",  # groups.csv is malformed
    "group_leakage": "error",  # one groups.csv group spans several splits
    "split_leakage": "error",  # near-duplicate images in different splits
    "target_leakage": "error",  # a near-duplicate of a target-dataset image
    "target_unreadable": "warning",  # a target image that could not be hashed
    "drift": "warning",  # a statistic drifted from the reference profile
}

METADATA_COLUMNS: tuple[str, ...] = (
    "stem", "image_path", "mask_path", "split", "group", "decodable", "decode_error", "image_format",
    "width", "height", "channels", "dtype", "mask_width", "mask_height", "size_match", "mask_n_values",
    "mask_values", "non_binary_fraction", "ambiguous_fraction", "foreground_fraction",
    "mean_r", "mean_g", "mean_b", "std_r", "std_g", "std_b",
    "image_sha256", "mask_sha256", "dhash", "intensity_hist",
)  # fmt: skip
_GX_EXCLUDED = ("intensity_hist",)

_EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"})
_MODE_CHANNELS = {"1": 1, "L": 1, "LA": 2, "P": 3, "PA": 4, "RGB": 3, "RGBA": 4, "RGBX": 4, "CMYK": 4,
                  "YCbCr": 3, "LAB": 3, "HSV": 3, "I": 1, "F": 1}  # fmt: skip
_MODE_DTYPE = {"1": "bool", "I": "int32", "F": "float32"}
_TIFF_SUFFIXES = frozenset({".tif", ".tiff"})


# ------------------------------------------------------------------------------------------- findings


@dataclass
class Finding:
    """One problem found in the data.

    Attributes:
        rule: rule name (an expectation's ``meta.rule`` or a key of :data:`CHECK_RULES`).
        severity: ``"error"`` (fails the validation) or ``"warning"``.
        message: what is wrong and how to fix it.
        stem: the pair's stem (None for dataset-level findings).
        path: the file at fault (None for dataset-level findings).
        source: ``"gx"`` (expectation suite), ``"check"`` (extra checks) or ``"drift"``.
    """

    rule: str
    severity: str
    message: str
    stem: str | None = None
    path: str | None = None
    source: str = "check"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return {
            "rule": self.rule,
            "severity": self.severity,
            "stem": self.stem,
            "path": self.path,
            "message": self.message,
            "source": self.source,
        }

    def __str__(self) -> str:
        return f"[{self.rule}] {self.path or self.stem or 'dataset'}: {self.message}"


@dataclass
class ValidationResult:
    """Outcome of :func:`validate_dataset`.

    Attributes:
        passed: True when there is no error-severity finding.
        errors: error findings (sorted by rule, then stem).
        warnings: warning findings.
        n_items: number of image/mask pairs in the metadata table.
        seconds: wall time of the whole validation.
        report_dir: the report folder.
        summary_path: ``report_dir/summary.json``.
        data_docs_path: the GX data docs ``index.html``.
        metadata_path: ``report_dir/metadata.csv`` (the table without histograms).
        timings: seconds per stage (``metadata_table``, ``gx``, ``checks``, ``drift``, ``reports``).
        drift: the drift report when a reference profile was given.
        drift_paths: ``(json, markdown)`` of the drift report, when written.
    """

    passed: bool
    errors: list[Finding]
    warnings: list[Finding]
    n_items: int
    seconds: float
    report_dir: Path
    summary_path: Path
    data_docs_path: Path | None
    metadata_path: Path
    timings: dict[str, float] = field(default_factory=dict)
    drift: DriftReport | None = None
    drift_paths: tuple[Path, Path] | None = None

    def failure_message(self) -> str:
        """One message naming every error (file and rule); empty when the data passed."""
        if self.passed:
            return ""
        lines = [f"{len(self.errors)} error(s) in {self.n_items} pair(s); see {self.summary_path}:"]
        lines += [f"- {finding}" for finding in self.errors]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------- layout


def _list_files(folder: Path) -> tuple[dict[str, list[Path]], list[str]]:
    by_stem, ignored = group_image_files(folder)
    if ignored:
        logger.warning("Ignoring %d non-image file(s) in %s: %s", len(ignored), folder, sorted(ignored)[:10])
    return by_stem, ignored


def _require_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise DatasetError(
            f"{what} {path} does not exist or is not a directory; expected a dataset folder with images/<stem>.<ext> "
            f"and masks/<stem>.<ext> (ext in {', '.join(sorted(e.lstrip('.') for e in IMAGE_EXTENSIONS))})."
        )


def scan_layout(
    data_dir: str | os.PathLike[str], severities: Mapping[str, str] | None = None
) -> tuple[list[Pair], list[Finding]]:
    """Pair images and masks by stem WITHOUT raising on pairing problems (unlike :func:`lgmsnet.data.scan_pairs`).

    Args:
        data_dir: dataset folder.
        severities: rule -> severity (default :func:`default_severities`).

    Returns:
        ``(pairs sorted by stem, findings)``: every image without mask (``missing_mask``), mask without image
        (``orphan_mask``) and extra file of a stem (``duplicate_stem``; the first file by name is used).

    Raises:
        lgmsnet.data.DatasetError: ``data_dir``, ``images/`` or ``masks/`` is not a directory.
    """
    sev = dict(severities or default_severities())
    root = Path(data_dir)
    _require_dir(root, "Dataset folder")
    _require_dir(root / "images", "Images folder")
    _require_dir(root / "masks", "Masks folder")
    images, _ = _list_files(root / "images")
    masks, _ = _list_files(root / "masks")
    findings: list[Finding] = []
    for kind, files in (("image", images), ("mask", masks)):
        for stem, paths in sorted(files.items()):
            for extra in paths[1:]:
                findings.append(Finding(
                    "duplicate_stem", sev["duplicate_stem"],
                    f"{kind} stem {stem!r} has {len(paths)} files ({', '.join(p.name for p in paths)}); "
                    f"{paths[0].name} is used. Keep one file per stem and delete or rename the others.",
                    stem, str(extra),
                ))  # fmt: skip
    for stem in sorted(images.keys() - masks.keys()):
        path = images[stem][0]
        findings.append(Finding(
            "missing_mask", sev["missing_mask"],
            f"image has no mask with the stem {stem!r} in {root / 'masks'}; add the mask or remove the image.",
            stem, str(path),
        ))  # fmt: skip
    for stem in sorted(masks.keys() - images.keys()):
        path = masks[stem][0]
        findings.append(Finding(
            "orphan_mask", sev["orphan_mask"],
            f"mask has no image with the stem {stem!r} in {root / 'images'}; add the image or remove the mask.",
            stem, str(path),
        ))  # fmt: skip
    pairs = [Pair(stem, images[stem][0], masks[stem][0]) for stem in sorted(images.keys() & masks.keys())]
    return pairs, findings


# ------------------------------------------------------------------------------------------- metadata


def _sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:  # unreadable: the decode error already names the file
        return None


def _tiff_info(path: str) -> tuple[int, str]:
    """(channels, dtype) of a TIFF that Pillow cannot open (e.g. 3-sample MinIsBlack frames)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        return int(getattr(page, "samplesperpixel", 1)), str(page.dtype)


def _image_stats(path: str) -> tuple[str, int, str, int, int, np.ndarray]:
    """Decode an image fully: (format, channels, dtype, width, height, 3 x 256 channel histogram).

    8-bit images go through Pillow (``Image.histogram`` in C, grey replicated to R = G = B); 16-bit, float and
    Pillow-unreadable files through :func:`lgmsnet.data.read_image` (tifffile fallback).
    """
    fmt, channels, dtype = "", 0, ""
    try:
        with Image.open(path) as image:
            fmt, mode = str(image.format or ""), image.mode
            channels = _MODE_CHANNELS.get(mode, 1)
            dtype = _MODE_DTYPE.get(mode, "uint16" if mode.startswith("I;16") else "uint8")
            if mode in _EIGHT_BIT_MODES:
                image.load()
                rgb = image if mode == "RGB" else image.convert("RGB")
                width, height = rgb.size
                return fmt, channels, dtype, width, height, np.asarray(rgb.histogram(), np.float64).reshape(3, 256)
    except Exception:
        if Path(path).suffix.lower() not in _TIFF_SUFFIXES:
            raise  # the decoder's own message (e.g. "image file is truncated") is the finding
    array = read_image(path, 3)  # raises DatasetError when the file cannot be decoded at all
    if not channels:
        fmt = Path(path).suffix.lstrip(".").upper()
        channels, dtype = _tiff_info(path) if fmt in ("TIF", "TIFF") else (3, "uint8")
    offsets = np.arange(3, dtype=np.int64) * 256
    hist = np.bincount((array.reshape(-1, 3).astype(np.int64) + offsets).ravel(), minlength=768)
    return fmt, channels, dtype, int(array.shape[1]), int(array.shape[0]), hist.reshape(3, 256).astype(np.float64)


def _mask_stats(path: str) -> tuple[int, int, np.ndarray]:
    """Decode a mask fully to grey (luminance): (width, height, 256-bin histogram).

    JPEG masks are decoded straight to their luma plane (``Image.draft("L", full size)``: no scaling, no colour
    conversion; on Kvasir-SEG identical to ``convert("L")``), other 8-bit files with ``convert("L")`` as
    :func:`lgmsnet.data.read_mask` does.
    """
    try:
        with Image.open(path) as image:
            if image.mode in _EIGHT_BIT_MODES:
                if image.format == "JPEG":
                    image.draft("L", image.size)
                image.load()
                grey = image if image.mode == "L" else image.convert("L")
                return grey.size[0], grey.size[1], np.asarray(grey.histogram(), np.float64)
    except Exception:
        if Path(path).suffix.lower() not in _TIFF_SUFFIXES:
            raise
    array = read_image(path, 1)[..., 0]
    return int(array.shape[1]), int(array.shape[0]), np.bincount(array.ravel(), minlength=256).astype(np.float64)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _describe_pair(job: tuple[str, str, str, int]) -> dict[str, Any]:
    """Metadata row of one pair (runs in a worker process; never raises for a bad file)."""
    stem, image_path, mask_path, noise_margin = job
    row: dict[str, Any] = {"stem": stem, "image_path": image_path, "mask_path": mask_path}
    errors: list[str] = []
    levels = np.arange(256, dtype=np.float64)
    try:
        fmt, channels, dtype, width, height, hist = _image_stats(image_path)
        n = max(width * height, 1)
        means = hist @ levels / n
        stds = np.sqrt(np.maximum(hist @ (levels**2) / n - means**2, 0.0))
        row.update(image_format=fmt, width=width, height=height, channels=channels, dtype=dtype)
        for i, channel in enumerate(CHANNELS):
            row[f"mean_{channel}"] = float(means[i])
            row[f"std_{channel}"] = float(stds[i])
        row["intensity_hist"] = (hist.reshape(3, INTENSITY_BINS, -1).sum(axis=2) / n).astype(np.float32)
        image_ok = True
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a finding
        errors.append(f"image {image_path}: {_error_text(exc)}")
        image_ok = False
    try:
        mw, mh, ghist = _mask_stats(mask_path)
        m = max(mw * mh, 1)
        values = np.flatnonzero(ghist)
        shown = ",".join(str(v) for v in values[:_SHOWN_VALUES])
        row.update(
            mask_width=mw,
            mask_height=mh,
            mask_n_values=int(values.size),
            mask_values=shown + (f",... ({values.size} values)" if values.size > _SHOWN_VALUES else ""),
            non_binary_fraction=float(1.0 - (ghist[0] + ghist[255]) / m),
            ambiguous_fraction=float(ghist[noise_margin : 256 - noise_margin].sum() / m),
            foreground_fraction=float(ghist[_FOREGROUND_ABOVE + 1 :].sum() / m),
        )
        mask_ok = True
    except Exception as exc:  # noqa: BLE001
        errors.append(f"mask {mask_path}: {_error_text(exc)}")
        mask_ok = False
    row["decodable"] = image_ok and mask_ok
    row["decode_error"] = "; ".join(errors)
    row["size_match"] = None
    if image_ok and mask_ok:
        row["size_match"] = (row["width"], row["height"]) == (row["mask_width"], row["mask_height"])
    row["image_sha256"] = _sha256(image_path)
    row["mask_sha256"] = _sha256(mask_path)
    try:
        row["dhash"] = image_dhash(image_path) if image_ok else None
    except Exception:  # noqa: BLE001 - decoded above but not by the hash reader: no hash, no leakage check
        row["dhash"] = None
    return row


def _hash_file(path: str) -> tuple[str, str | None, str]:
    try:
        return path, image_dhash(path), ""
    except Exception as exc:  # noqa: BLE001
        return path, None, _error_text(exc)


def _resolve_workers(workers: int | None) -> int:
    if workers is None:
        return max(1, os.cpu_count() or 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int (processes) or None for os.cpu_count(), got {workers!r}.")
    return workers


def _parallel_map(fn: Callable[[Any], Any], jobs: Sequence[Any], workers: int) -> list[Any]:
    """``[fn(j) for j in jobs]`` in a process pool (fork where available: workers inherit loaded modules)."""
    if workers <= 1 or len(jobs) < _SERIAL_BELOW:
        return [fn(job) for job in jobs]
    import multiprocessing

    context = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
    chunksize = max(1, len(jobs) // (workers * 8))
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(fn, jobs, chunksize=chunksize))


def _empty_table() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({column: pd.Series(dtype=object) for column in METADATA_COLUMNS})


def _manifest_splits(manifest: SplitManifest | None) -> dict[str, str]:
    if manifest is None:
        return {}
    return {stem: name for name in ("train", "val", "test") for stem in manifest.split(name)}


def build_metadata_table(
    data_dir: str | os.PathLike[str],
    manifest: SplitManifest | str | os.PathLike[str] | None = None,
    *,
    workers: int | None = None,
    mask_noise_margin: int = DEFAULT_MASK_NOISE_MARGIN,
    pairs: Sequence[Pair] | None = None,
    groups: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """One row per image/mask pair, every file decoded once (columns: :data:`METADATA_COLUMNS`).

    Columns: ``stem``, ``image_path``, ``mask_path``, ``split`` (from the manifest, else ``"unassigned"``),
    ``group`` (``groups.csv``, else ``""``), ``decodable`` + ``decode_error`` (naming the file), ``image_format``,
    ``width``, ``height``, ``channels`` (stored bands; palette images count 3), ``dtype`` (stored sample type),
    ``mask_width``, ``mask_height``, ``size_match``, ``mask_n_values`` + ``mask_values`` (distinct grey levels,
    count and the first few), ``non_binary_fraction`` (grey neither 0 nor 255), ``ambiguous_fraction`` (grey in
    ``margin..255-margin``), ``foreground_fraction`` (grey > 127), ``mean_{r,g,b}`` and ``std_{r,g,b}`` (exact,
    grey images as R = G = B), ``image_sha256``, ``mask_sha256``, ``dhash`` (:func:`lgmsnet.data.image_dhash`) and
    ``intensity_hist`` (3 x 32 float32 pixel fractions per channel). Values of a file that did not decode are
    missing (NaN/None).

    Args:
        data_dir: dataset folder (``images/`` + ``masks/``).
        manifest: a split manifest (object or JSON path) for the ``split`` column.
        workers: processes (default ``os.cpu_count()``; fewer than 16 pairs run in-process).
        mask_noise_margin: grey levels next to 0 and 255 that count as compression noise, not ambiguity.
        pairs: the pairs to describe (default: those of :func:`scan_layout`; pairing problems are not reported here).
        groups: stem -> group (default: ``groups.csv``, ignored when malformed).

    Returns:
        The table, sorted by stem, with a RangeIndex.

    Raises:
        lgmsnet.data.DatasetError: the folder lacks ``images/`` or ``masks/``; the manifest cannot be read.
        ValueError: ``workers`` or ``mask_noise_margin`` out of range.
    """
    import pandas as pd

    n_workers = _resolve_workers(workers)
    if isinstance(mask_noise_margin, bool) or not isinstance(mask_noise_margin, int) or not 0 < mask_noise_margin < 128:
        raise ValueError(
            f"mask_noise_margin must be an int in 1..127 (grey levels next to 0 and 255 treated as noise), "
            f"got {mask_noise_margin!r}; the default {DEFAULT_MASK_NOISE_MARGIN} suits JPEG masks."
        )
    if pairs is None:
        pairs, _ = scan_layout(data_dir)
    if isinstance(manifest, str | os.PathLike):
        manifest = load_manifest(manifest)
    if groups is None:
        try:
            groups = load_groups(data_dir)
        except DatasetError as exc:
            logger.warning("groups.csv ignored: %s", exc)
            groups = {}
    started = time.perf_counter()
    jobs = [(p.stem, str(p.image_path), str(p.mask_path), mask_noise_margin) for p in pairs]
    rows = _parallel_map(_describe_pair, jobs, n_workers)
    if not rows:
        return _empty_table()
    splits = _manifest_splits(manifest)
    for row in rows:
        row["split"] = splits.get(row["stem"], "unassigned")
        row["group"] = groups.get(row["stem"], "")
    table = pd.DataFrame.from_records(rows)
    for column in METADATA_COLUMNS:
        if column not in table.columns:
            table[column] = None
    table = table[list(METADATA_COLUMNS)].sort_values("stem", kind="stable").reset_index(drop=True)
    seconds = time.perf_counter() - started
    serial = n_workers <= 1 or len(jobs) < _SERIAL_BELOW
    logger.info("Metadata of %d pairs in %.1f s (%s)", len(table), seconds,
                "in-process" if serial else f"{n_workers} processes")  # fmt: skip
    return table


# ------------------------------------------------------------------------------------------- suite


def load_suite_spec(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Read and check the expectation suite JSON (default :data:`SUITE_PATH`).

    Returns:
        The suite as a dict (GX ``ExpectationSuite`` fields; ``meta.parameters`` holds parameter defaults).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: invalid JSON, or an expectation without ``meta.rule`` or with a severity not in
            :data:`SEVERITIES`.
    """
    path = Path(path) if path is not None else SUITE_PATH
    if not path.is_file():
        raise FileNotFoundError(f"expectation suite {path} does not exist; restore it from the repository.")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"expectation suite {path} is not valid JSON ({exc}); fix the file.") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("expectations"), list) or not spec.get("name"):
        raise ValueError(f"expectation suite {path} needs a 'name' and an 'expectations' list (GX suite JSON).")
    for i, expectation in enumerate(spec["expectations"]):
        meta = expectation.get("meta") or {}
        if not meta.get("rule") or meta.get("severity") not in SEVERITIES:
            raise ValueError(
                f"expectation #{i} ({expectation.get('type')}) in {path} has meta {meta}; every expectation needs "
                f"meta.rule (a name) and meta.severity in {list(SEVERITIES)}."
            )
    return spec


def default_severities(suite_spec: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Rule -> default severity, for the suite's rules and :data:`CHECK_RULES`."""
    spec = suite_spec if suite_spec is not None else load_suite_spec()
    severities = {e["meta"]["rule"]: e["meta"]["severity"] for e in spec["expectations"]}
    severities.update(CHECK_RULES)
    return severities


def load_severity_overrides(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read severity overrides from a small YAML (or JSON) mapping ``rule: error|warning``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not a mapping of strings.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"severity file {path} does not exist; write a YAML mapping such as 'empty_mask: error'."
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"severity file {path} is not valid YAML ({exc}).") from exc
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError(f"severity file {path} must be a mapping rule: error|warning, got {data!r}.")
    return dict(data)


def _effective_severities(
    defaults: Mapping[str, str], overrides: Mapping[str, str] | str | os.PathLike[str] | None
) -> dict[str, str]:
    if overrides is None:
        return dict(defaults)
    if isinstance(overrides, str | os.PathLike):
        overrides = load_severity_overrides(overrides)
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"unknown rule(s) in severity overrides: {unknown}; valid rules: {sorted(defaults)}.")
    bad = {rule: level for rule, level in overrides.items() if str(level).lower() not in SEVERITIES}
    if bad:
        raise ValueError(f"invalid severity in overrides: {bad}; allowed: {list(SEVERITIES)} (e.g. empty_mask=error).")
    return {**defaults, **{rule: str(level).lower() for rule, level in overrides.items()}}


# ------------------------------------------------------------------------------------------- GX


def _gx_context(docs_dir: Path) -> Any:
    try:
        import great_expectations as gx
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )
    except ImportError as exc:
        raise RuntimeError(
            "great_expectations is not installed; data validation needs the MLOps extra: pip install 'lgmsnet[mlops]'."
        ) from exc
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={
            "local_site": {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _gx_suite(spec: Mapping[str, Any], severities: Mapping[str, str]) -> Any:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    native = "severity" in getattr(gxe.Expectation, "__fields__", {})
    expectations = []
    for raw in spec["expectations"]:
        expectation = {k: v for k, v in raw.items() if k not in ("id", "severity")}
        rule = raw["meta"]["rule"]
        expectation["meta"] = {**raw["meta"], "severity": severities[rule]}
        if native:  # GX >= 1.6 renders its own severity: map error -> critical
            expectation["severity"] = "critical" if severities[rule] == "error" else "warning"
        expectations.append(expectation)
    meta = {k: v for k, v in dict(spec.get("meta") or {}).items() if k != "great_expectations_version"}
    return gx.ExpectationSuite(name=spec["name"], expectations=expectations, meta=meta)


def _run_gx(
    table: pd.DataFrame, spec: Mapping[str, Any], severities: Mapping[str, str], parameters: Mapping[str, Any],
    docs_dir: Path,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run the suite; returns (failed expectations as dicts, GX statistics)."""
    import great_expectations as gx

    context = _gx_context(docs_dir)
    suite = context.suites.add(_gx_suite(spec, severities))
    asset = context.data_sources.add_pandas("lgmsnet_dataset").add_dataframe_asset("pairs")
    batch = asset.add_batch_definition_whole_dataframe("all_pairs")
    definition = context.validation_definitions.add(gx.ValidationDefinition(name="pairs", data=batch, suite=suite))
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name="segmentation_dataset",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["stem"]},
        )
    )
    frame = table.drop(columns=[c for c in _GX_EXCLUDED if c in table.columns])
    result = checkpoint.run(batch_parameters={"dataframe": frame}, expectation_parameters=dict(parameters))
    failed: list[dict[str, Any]] = []
    statistics: dict[str, Any] = {"success": bool(result.success)}
    for run in result.run_results.values():
        statistics.update({k: v for k, v in dict(run.statistics).items() if isinstance(v, int | float | None)})
        for item in run.results:
            if item.success:
                continue
            config = item.expectation_config
            exception = dict(item.exception_info or {})
            failed.append({
                "type": config.type,
                "kwargs": {k: v for k, v in dict(config.kwargs).items() if k != "batch_id"},
                "meta": dict(config.meta or {}),
                "unexpected": list((item.result or {}).get("unexpected_index_list") or []),
                "observed": (item.result or {}).get("observed_value"),
                "exception": exception.get("exception_message") if exception.get("raised_exception") else None,
            })  # fmt: skip
    return failed, statistics


def _fmt(value: Any, spec: str = "") -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "?"
    if isinstance(value, float) and value.is_integer() and not spec:
        return str(int(value))
    return format(value, spec)


def _row_message(rule: str, row: Mapping[str, Any], parameters: Mapping[str, Any], table: pd.DataFrame) -> str:
    w, h = _fmt(row.get("width")), _fmt(row.get("height"))
    messages: dict[str, Callable[[], str]] = {
        "decodable": lambda: (
            "cannot be decoded: "
            + str(row.get("decode_error") or "unknown error")
            .replace(f" {row.get('image_path')}:", ":")
            .replace(f" {row.get('mask_path')}:", ":")
            + "; re-export the file or delete the pair"
        ),
        "size_match": lambda: (
            f"image is {w}x{h} (WxH) but mask is {_fmt(row.get('mask_width'))}x{_fmt(row.get('mask_height'))}; "
            "a mask must have exactly its image's size, re-export the mask"
        ),
        "channels": lambda: (
            f"image has {_fmt(row.get('channels'))} channels; allowed are 1 (grey) or 3 (RGB), re-export it without "
            "alpha/CMYK"
        ),
        "dtype": lambda: f"image samples are {row.get('dtype')}; expected uint8 (they are rescaled to 8 bits on read)",
        "min_size": lambda: (
            f"image is {w}x{h} (WxH), below the minimum of {parameters.get('min_size')} px per side; "
            "remove it or lower --min-size"
        ),
        "mask_non_binary": lambda: (
            f"{_fmt(row.get('ambiguous_fraction'), '.2%')} of mask pixels are mid-grey (levels "
            f"{DEFAULT_MASK_NOISE_MARGIN}..{255 - DEFAULT_MASK_NOISE_MARGIN}; grey levels {row.get('mask_values')}), "
            f"tolerance {_fmt(parameters.get('non_binary_tolerance'), '.2%')}: a soft, anti-aliased or "
            "interpolated mask; re-export it as 0/255 (nearest-neighbour resizing)"
        ),
        "foreground_fraction": lambda: f"foreground fraction {row.get('foreground_fraction')} is not in 0..1",
        "empty_mask": lambda: (
            f"mask has no foreground pixel (grey > 127; grey levels {row.get('mask_values')}); fine for a lesion-free "
            "image, otherwise re-export the mask (0/1 label masks need rescaling to 0/255)"
        ),
        "duplicate_file": lambda: (
            "image is byte-identical to "
            + ", ".join(
                sorted(str(s) for s in table.loc[table["image_sha256"] == row.get("image_sha256"), "stem"]
                       if s != row.get("stem"))
            )
            + "; delete the copies"
        ),
        "stem_unique": lambda: f"stem {row.get('stem')!r} appears in several rows",
    }
    return messages[rule]() if rule in messages else ""


def _gx_findings(
    failed: Iterable[Mapping[str, Any]], table: pd.DataFrame, severities: Mapping[str, str],
    parameters: Mapping[str, Any],
) -> list[Finding]:
    by_stem = {str(r["stem"]): r for r in table.to_dict("records")}
    findings: list[Finding] = []
    seen: set[tuple[str, str | None]] = set()
    for item in failed:
        meta = item["meta"]
        rule = str(meta.get("rule", item["type"]))
        severity = severities.get(rule, str(meta.get("severity", "error")))
        described = f"{item['type']}({', '.join(f'{k}={v!r}' for k, v in item['kwargs'].items())})"
        if item["exception"]:
            findings.append(Finding(rule, severity, f"GX could not evaluate {described}: {item['exception']}",
                                    source="gx"))  # fmt: skip
            continue
        if not item["unexpected"]:  # a table-level expectation
            observed = f" (observed {item['observed']})" if item["observed"] is not None else ""
            findings.append(Finding(rule, severity, f"dataset fails {described}{observed}", source="gx"))
            continue
        for unexpected in item["unexpected"]:
            stem = str(unexpected.get("stem")) if isinstance(unexpected, Mapping) else str(unexpected)
            if (rule, stem) in seen:  # e.g. min_size fails on width and height: one finding
                continue
            seen.add((rule, stem))
            row = by_stem.get(stem, {})
            column = item["kwargs"].get("column")
            message = _row_message(rule, row, parameters, table) or (
                f"{column} = {row.get(column)!r} fails {described}"
            )
            target = str(meta.get("file", "image"))
            if rule == "decodable":
                error = str(row.get("decode_error") or "")
                path = row.get("image_path") if error.startswith("image") else row.get("mask_path")
            else:
                path = row.get("mask_path") if target == "mask" else row.get("image_path")
            findings.append(Finding(rule, severity, message, stem, None if path is None else str(path), "gx"))
    return findings


# ------------------------------------------------------------------------------------------- extra checks


def _manifest_findings(
    manifest: SplitManifest, stems: Sequence[str], fingerprint: str | None, severities: Mapping[str, str],
    manifest_path: str,
) -> list[Finding]:
    findings: list[Finding] = []
    in_manifest = _manifest_splits(manifest)
    present = set(stems)
    for stem in sorted(set(in_manifest) - present):
        findings.append(Finding(
            "manifest_unknown_stem", severities["manifest_unknown_stem"],
            f"split manifest {manifest_path} puts stem {stem!r} in {in_manifest[stem]} but the dataset has no such "
            "image/mask pair; regenerate the manifest for this dataset (lgmsnet data split)",
            stem, manifest_path,
        ))  # fmt: skip
    for stem in sorted(present - set(in_manifest)):
        findings.append(Finding(
            "manifest_unassigned", severities["manifest_unassigned"],
            f"pair is in no split of {manifest_path}; it will never be used (regenerate the manifest)",
            stem, manifest_path,
        ))  # fmt: skip
    if fingerprint is not None and manifest.fingerprint != fingerprint:
        findings.append(Finding(
            "manifest_fingerprint", severities["manifest_fingerprint"],
            f"split manifest {manifest_path} was made for dataset fingerprint {manifest.fingerprint[:12]} but this "
            f"dataset is {fingerprint[:12]} (files changed since the split); regenerate the manifest",
            None, manifest_path,
        ))  # fmt: skip
    return findings


def _split_leakage(table: pd.DataFrame, threshold: int, severities: Mapping[str, str]) -> list[Finding]:
    rows = table[table["dhash"].notna() & (table["split"] != "unassigned")]
    hashes = dict(zip(rows["stem"].astype(str), rows["dhash"].astype(str), strict=True))
    split = dict(zip(rows["stem"].astype(str), rows["split"].astype(str), strict=True))
    paths = dict(zip(rows["stem"].astype(str), rows["image_path"].astype(str), strict=True))
    findings: list[Finding] = []
    for members in near_duplicate_groups(hashes, threshold):
        for a, b in itertools.combinations(members, 2):
            if split[a] == split[b]:
                continue
            distance = hamming_distance(hashes[a], hashes[b])
            if distance > threshold:
                continue
            findings.append(Finding(
                "split_leakage", severities["split_leakage"],
                f"near-duplicate of {a} ({paths[a]}; dHash Hamming distance {distance} <= {threshold}) across splits: "
                f"{a} is in {split[a]}, {b} in {split[b]}; keep near-duplicates in one split "
                "(regenerate the manifest with `lgmsnet data split`)",
                b, paths[b],
            ))  # fmt: skip
    return findings


def _group_leakage(table: pd.DataFrame, severities: Mapping[str, str]) -> list[Finding]:
    rows = table[(table["group"] != "") & (table["split"] != "unassigned")]
    findings: list[Finding] = []
    for group, members in rows.groupby("group"):
        splits = sorted(set(members["split"]))
        if len(splits) > 1:
            by_split = {s: sorted(members.loc[members["split"] == s, "stem"].astype(str)) for s in splits}
            findings.append(Finding(
                "group_leakage", severities["group_leakage"],
                f"groups.csv group {group!r} spans splits {splits} ({by_split}); a group (video, patient) must stay "
                "in one split, regenerate the manifest",
                None, None,
            ))  # fmt: skip
    return findings


def _target_images(target_dir: Path) -> list[Path]:
    folder = target_dir / "images" if (target_dir / "images").is_dir() else target_dir
    return sorted(
        Path(e.path)
        for e in os.scandir(folder)
        if e.is_file() and not e.name.startswith(".") and Path(e.name).suffix.lower() in IMAGE_EXTENSIONS
    )


def _hash_bits(hashes: Sequence[str]) -> np.ndarray:
    raw = np.frombuffer(b"".join(bytes.fromhex(h) for h in hashes), dtype=np.uint8).reshape(len(hashes), -1)
    return np.unpackbits(raw, axis=1).astype(np.float32)


def _target_leakage(
    table: pd.DataFrame, target_dir: Path, threshold: int, workers: int, severities: Mapping[str, str]
) -> list[Finding]:
    findings: list[Finding] = []
    hashed = _parallel_map(_hash_file, [str(p) for p in _target_images(target_dir)], workers)
    target = [(path, h) for path, h, _ in hashed if h]
    for path, _, error in hashed:
        if error:
            findings.append(Finding(
                "target_unreadable", severities["target_unreadable"],
                f"target image cannot be decoded ({error}); it was not checked for leakage", None, path,
            ))  # fmt: skip
    source = table[table["dhash"].notna()]
    if threshold < 0 or not target or source.empty:
        return findings
    src_hashes = source["dhash"].astype(str).tolist()
    src_bits = _hash_bits(src_hashes)
    tgt_bits = _hash_bits([h for _, h in target])
    for start in range(0, len(src_bits), 1024):
        block = src_bits[start : start + 1024]
        distance = block @ (1.0 - tgt_bits).T + (1.0 - block) @ tgt_bits.T
        for r, c in zip(*np.nonzero(distance <= threshold + 0.5), strict=True):
            row = source.iloc[start + int(r)]
            t_path, _ = target[int(c)]
            findings.append(Finding(
                "target_leakage", severities["target_leakage"],
                f"near-duplicate of target image {t_path} (dHash Hamming distance {int(round(distance[r, c]))} <= "
                f"{threshold}): the zero-shot target shares images with this dataset; remove one of them",
                str(row["stem"]), str(row["image_path"]),
            ))  # fmt: skip
    return findings


# ------------------------------------------------------------------------------------------- reports


def _swap_in_dir(tmp_dir: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex}")
    if target.exists():
        os.rename(target, old)
    os.rename(tmp_dir, target)
    shutil.rmtree(old, ignore_errors=True)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _sort_key(finding: Finding) -> tuple[str, str, str]:
    return finding.rule, finding.stem or "", finding.path or ""


# ------------------------------------------------------------------------------------------- entry


def _check_int(name: str, value: Any, low: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}; {hint}.")


def validate_dataset(
    data_dir: str | os.PathLike[str],
    *,
    report_dir: str | os.PathLike[str],
    manifest: SplitManifest | str | os.PathLike[str] | None = None,
    target_dir: str | os.PathLike[str] | None = None,
    reference_profile: Profile | str | os.PathLike[str] | None = None,
    severity_overrides: Mapping[str, str] | str | os.PathLike[str] | None = None,
    min_size: int = DEFAULT_MIN_SIZE,
    hash_threshold: int = DEFAULT_HASH_THRESHOLD,
    non_binary_tolerance: float = DEFAULT_NON_BINARY_TOLERANCE,
    drift_thresholds: DriftThresholds | None = None,
    workers: int | None = None,
    suite_path: str | os.PathLike[str] | None = None,
) -> ValidationResult:
    """Validate a dataset folder: GX expectation suite + extra checks (+ drift), with reports written either way.

    Writes ``report_dir/summary.json`` (every finding, counts, timings, pass/fail; written last, atomically),
    ``report_dir/data_docs/index.html`` (GX data docs, swapped in atomically), ``report_dir/metadata.csv`` and,
    with a reference profile, ``report_dir/profile.json`` and ``report_dir/drift.{json,md}``.

    Args:
        data_dir: dataset folder (``images/`` + ``masks/``; optional ``groups.csv``).
        report_dir: report folder (created; previous reports there are replaced).
        manifest: split manifest (object or JSON path) for the cross-split leakage and manifest checks.
        target_dir: a zero-shot target dataset (folder with ``images/``, or of images) checked for near-duplicates
            of this dataset.
        reference_profile: a :class:`components.profile.Profile` or its JSON path; drifted statistics become
            ``drift`` findings (warning by default).
        severity_overrides: rule -> ``"error"``/``"warning"`` (mapping, or a YAML file path).
        min_size: minimum image width and height in pixels (``min_size`` rule).
        hash_threshold: maximum dHash Hamming distance of near-duplicates (negative disables the leakage checks).
        non_binary_tolerance: maximum fraction of mid-grey mask pixels (``mask_non_binary`` rule).
        drift_thresholds: drift thresholds (default :class:`components.profile.DriftThresholds`).
        workers: decoding processes (default ``os.cpu_count()``).
        suite_path: expectation suite JSON (default :data:`SUITE_PATH`).

    Returns:
        The result; ``passed`` is False when any error-severity finding exists.

    Raises:
        lgmsnet.data.DatasetError: ``data_dir`` (or its ``images/``/``masks/``) or ``target_dir`` is not a folder,
            or the manifest cannot be read.
        FileNotFoundError: the manifest, reference profile, severity file or suite does not exist.
        ValueError: an unknown rule or severity in the overrides, or a parameter out of range.
        RuntimeError: great_expectations is not installed.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    _check_int("min_size", min_size, 1, f"it is the minimum image side in pixels (default {DEFAULT_MIN_SIZE})")
    _check_int("hash_threshold", hash_threshold, -1, "it is a dHash Hamming distance (default 10; -1 disables)")
    if isinstance(non_binary_tolerance, bool) or not isinstance(non_binary_tolerance, int | float) or not (
        0.0 <= non_binary_tolerance <= 1.0
    ):
        raise ValueError(
            f"non_binary_tolerance must be a fraction in 0..1, got {non_binary_tolerance!r}; "
            f"the default {DEFAULT_NON_BINARY_TOLERANCE} allows 2 % mid-grey mask pixels."
        )
    n_workers = _resolve_workers(workers)
    spec = load_suite_spec(suite_path)
    severities = _effective_severities(default_severities(spec), severity_overrides)
    root = Path(data_dir)
    manifest_path = None
    if manifest is not None and not isinstance(manifest, SplitManifest):
        manifest_path = str(manifest)
        if not Path(manifest).is_file():
            raise FileNotFoundError(
                f"split manifest {manifest} does not exist; create it with `lgmsnet data split --data {root} --out M`."
            )
        manifest = load_manifest(manifest)
    if target_dir is not None:
        _require_dir(Path(target_dir), "Target dataset folder")
    if reference_profile is not None and not isinstance(reference_profile, Profile):
        reference_profile = load_profile(reference_profile)
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)

    # 1. metadata table (pairing problems are findings, not exceptions)
    t0 = time.perf_counter()
    pairs, findings = scan_layout(root, severities)
    groups: dict[str, str] = {}
    try:
        groups = load_groups(root)
    except DatasetError as exc:
        findings.append(Finding("groups_file", severities["groups_file"], str(exc), None, str(root / "groups.csv")))
    table = build_metadata_table(root, manifest, workers=n_workers, pairs=pairs, groups=groups)
    timings["metadata_table"] = time.perf_counter() - t0

    # 2. expectation suite
    t0 = time.perf_counter()
    parameters = {**dict((spec.get("meta") or {}).get("parameters") or {}),
                  "min_size": min_size, "non_binary_tolerance": float(non_binary_tolerance)}  # fmt: skip
    docs_tmp = out / f".data_docs.tmp-{uuid.uuid4().hex}"
    try:
        failed, gx_statistics = _run_gx(table, spec, severities, parameters, docs_tmp)
        _swap_in_dir(docs_tmp, out / "data_docs")
    finally:
        shutil.rmtree(docs_tmp, ignore_errors=True)
    findings += _gx_findings(failed, table, severities, parameters)
    timings["gx"] = time.perf_counter() - t0

    # 3. checks a table cannot express
    t0 = time.perf_counter()
    if isinstance(manifest, SplitManifest):
        findings += _manifest_findings(
            manifest, table["stem"].astype(str).tolist(), dataset_fingerprint(root), severities,
            manifest_path or "<manifest>",
        )  # fmt: skip
        if hash_threshold >= 0:
            findings += _split_leakage(table, hash_threshold, severities)
        findings += _group_leakage(table, severities)
    if target_dir is not None and hash_threshold >= 0:
        findings += _target_leakage(table, Path(target_dir), hash_threshold, n_workers, severities)
    timings["checks"] = time.perf_counter() - t0

    # 4. drift
    drift: DriftReport | None = None
    drift_paths: tuple[Path, Path] | None = None
    if reference_profile is not None:
        t0 = time.perf_counter()
        candidate = profile_from_table(table, source=str(root))
        write_profile(candidate, out / "profile.json")
        drift = compare_profiles(reference_profile, candidate, drift_thresholds)
        drift_paths = write_drift_report(drift, out / "drift.json")
        for stat in drift.drifted:
            findings.append(Finding(
                "drift", severities["drift"],
                f"{stat.name} drifted from the reference profile ({reference_profile.source or 'reference'}): "
                f"{'; '.join(stat.reasons)}; check the acquisition/preprocessing or retrain",
                None, str(drift_paths[1]), "drift",
            ))  # fmt: skip
        timings["drift"] = time.perf_counter() - t0
    else:  # no stale drift report from an earlier run next to this summary
        for name in ("profile.json", "drift.json", "drift.md"):
            (out / name).unlink(missing_ok=True)

    # 5. reports (summary.json last: its presence marks a complete report)
    t0 = time.perf_counter()
    errors = sorted((f for f in findings if f.severity == "error"), key=_sort_key)
    warnings = sorted((f for f in findings if f.severity != "error"), key=_sort_key)
    metadata_path = out / "metadata.csv"
    csv_text = table.drop(columns=list(_GX_EXCLUDED)).to_csv(index=False) if len(table) else ""
    atomic_write_text(metadata_path, csv_text)
    docs_index = out / "data_docs" / "index.html"
    by_rule: dict[str, dict[str, Any]] = {}
    for finding in errors + warnings:
        entry = by_rule.setdefault(finding.rule, {"severity": finding.severity, "count": 0})
        entry["count"] += 1
    timings["reports"] = time.perf_counter() - t0
    seconds = time.perf_counter() - started
    passed = not errors
    summary = {
        "format_version": SUMMARY_FORMAT_VERSION,
        "passed": passed,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_dir": str(root),
        "manifest": manifest_path if manifest_path else (None if manifest is None else "<object>"),
        "target_dir": None if target_dir is None else str(target_dir),
        "reference_profile": None if reference_profile is None else reference_profile.source,
        "n_items": len(table),
        "n_errors": len(errors),
        "n_warnings": len(warnings),
        "by_rule": by_rule,
        "parameters": {**parameters, "hash_threshold": hash_threshold, "mask_noise_margin": DEFAULT_MASK_NOISE_MARGIN,
                       "workers": n_workers},  # fmt: skip
        "severities": severities,
        "suite": {"name": spec["name"], "path": str(Path(suite_path) if suite_path else SUITE_PATH), **gx_statistics},
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "seconds": round(seconds, 4),
        "images_per_s": round(len(table) / seconds, 2) if seconds > 0 else None,
        "reports": {
            "data_docs": str(docs_index),
            "metadata": str(metadata_path),
            "drift": None if drift_paths is None else [str(p) for p in drift_paths],
        },
        "drift": None if drift is None else drift.to_dict(),
        "errors": [f.to_dict() for f in errors],
        "warnings": [f.to_dict() for f in warnings],
    }
    summary_path = atomic_write_text(out / "summary.json", json.dumps(_json_safe(summary), indent=1) + "\n")
    logger.info(
        "Validated %s: %d pair(s), %d error(s), %d warning(s) in %.1f s -> %s",
        root, len(table), len(errors), len(warnings), seconds, summary_path,
    )  # fmt: skip
    return ValidationResult(
        passed=passed,
        errors=errors,
        warnings=warnings,
        n_items=len(table),
        seconds=seconds,
        report_dir=out,
        summary_path=summary_path,
        data_docs_path=docs_index if docs_index.is_file() else None,
        metadata_path=metadata_path,
        timings=timings,
        drift=drift,
        drift_paths=drift_paths,
    )
