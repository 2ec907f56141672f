"""Folder datasets: ``DIR/images/<stem>.<ext>`` paired with ``DIR/masks/<stem>.<ext>``.

Layout::

    DIR/
      images/<stem>.{png,jpg,jpeg,bmp,tif,tiff}   RGB or grey
      masks/<stem>.{png,jpg,jpeg,bmp,tif,tiff}    grey (a colour mask is reduced to its luminance)
      groups.csv      optional, columns ``stem,group`` (video sequence, patient, ...): never split a group
      dataset.yaml    optional provenance, exposed as a dict

Images and masks are paired by stem, never by listing order; extensions are matched case-insensitively and may
differ between an image and its mask. Masks are binarised with ``mask > threshold`` (default 127, so 127 -> 0
and 128 -> 1): this removes JPEG compression noise at lesion edges (Kvasir-SEG) and faint grey annotation
artefacts (CVC-ClinicDB). A mask stored as 0/1 labels would become empty under that threshold; it is reported
with a warning.

Every problem raises :class:`DatasetError` naming the file and the fix.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from PIL import Image

from lgmsnet.data.transforms import normalize_image

__all__ = [
    "DEFAULT_MASK_THRESHOLD",
    "IMAGE_EXTENSIONS",
    "DatasetError",
    "Pair",
    "SegmentationDataset",
    "ValidationReport",
    "dataset_fingerprint",
    "group_image_files",
    "load_dataset_info",
    "load_groups",
    "read_image",
    "read_mask",
    "scan_pairs",
    "validate_pairs",
]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
DEFAULT_MASK_THRESHOLD = 127
GROUPS_FILE = "groups.csv"
INFO_FILE = "dataset.yaml"
_MAX_LISTED = 10
_TIFF_EXTENSIONS = frozenset({".tif", ".tiff"})
_LAYOUT_HINT = "expected layout: DIR/images/<stem>.<ext> and DIR/masks/<stem>.<ext> with ext in " + ", ".join(
    sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS)
)


class DatasetError(ValueError):
    """A dataset folder, file or manifest is missing, malformed or inconsistent; the message names the file."""


@dataclass(frozen=True)
class Pair:
    """One image and its mask.

    Attributes:
        stem: file name without extension, shared by image and mask.
        image_path: path of the image file.
        mask_path: path of the mask file.
    """

    stem: str
    image_path: Path
    mask_path: Path


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f" (and {more} more)" if more > 0 else "")


def group_image_files(folder: Path) -> tuple[dict[str, list[Path]], list[str]]:
    """Group a folder's image files by stem (each list sorted by name); also return the non-image file names.

    Hidden files and sub-folders are skipped. Used by :func:`scan_pairs` (which refuses duplicate stems) and by the
    validation layer (which reports them).
    """
    by_stem: dict[str, list[Path]] = {}
    ignored: list[str] = []
    for entry in os.scandir(folder):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        path = Path(entry.path)
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            by_stem.setdefault(path.stem, []).append(path)
        else:
            ignored.append(entry.name)
    return {stem: sorted(paths) for stem, paths in by_stem.items()}, ignored


def _list_image_files(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Map stem -> file for the image files of one folder; returns (files, problems)."""
    by_stem, ignored = group_image_files(folder)
    if ignored:
        logger.warning(
            "Ignoring %d file(s) in %s whose extension is not one of %s: %s",
            len(ignored),
            folder,
            sorted(IMAGE_EXTENSIONS),
            _listed(sorted(ignored)),
        )
    problems = [
        f"{folder}: stem {stem!r} has {len(paths)} files ({', '.join(sorted(p.name for p in paths))}); "
        "keep exactly one file per stem and delete or rename the others"
        for stem, paths in sorted(by_stem.items())
        if len(paths) > 1
    ]
    return {stem: paths[0] for stem, paths in by_stem.items()}, problems


def _require_folder(path: Path, what: str) -> None:
    if not path.is_dir():
        raise DatasetError(f"{what} folder {path} does not exist or is not a directory; {_LAYOUT_HINT}.")


def scan_pairs(data_dir: str | os.PathLike[str]) -> list[Pair]:
    """List image/mask pairs by stem without opening any file (cheap structural validation).

    Args:
        data_dir: dataset folder holding ``images/`` and ``masks/``.

    Returns:
        Pairs sorted by stem.

    Raises:
        DatasetError: missing ``images/`` or ``masks/`` folder, an image without mask, a mask without image,
            a stem with two files (e.g. ``a.png`` and ``a.jpg``), or no pair at all. All pairing problems are
            listed in one message.
    """
    root = Path(data_dir)
    _require_folder(root, "Dataset")
    images_dir, masks_dir = root / "images", root / "masks"
    _require_folder(images_dir, "Images")
    _require_folder(masks_dir, "Masks")
    images, problems = _list_image_files(images_dir)
    masks, mask_problems = _list_image_files(masks_dir)
    problems += mask_problems
    no_mask = sorted(images[s].name for s in images.keys() - masks.keys())
    no_image = sorted(masks[s].name for s in masks.keys() - images.keys())
    if no_mask:
        problems.append(
            f"{len(no_mask)} image(s) in {images_dir} have no mask with the same stem in {masks_dir}: "
            f"{_listed(no_mask)}; add the masks or remove these images"
        )
    if no_image:
        problems.append(
            f"{len(no_image)} mask(s) in {masks_dir} have no image with the same stem in {images_dir}: "
            f"{_listed(no_image)}; add the images or remove these masks"
        )
    if problems:
        raise DatasetError(f"Dataset {root} is inconsistent:\n- " + "\n- ".join(problems))
    stems = sorted(images.keys() & masks.keys())
    if not stems:
        raise DatasetError(
            f"Dataset {root} is empty: no image/mask pairs found in {images_dir} and {masks_dir}; {_LAYOUT_HINT}."
        )
    return [Pair(stem, images[stem], masks[stem]) for stem in stems]


def _to_uint8(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return np.round(array.astype(np.float32) / 257.0).astype(np.uint8)
    if array.size == 0:
        return array.astype(np.uint8)
    lo, hi = float(array.min()), float(array.max())
    if np.issubdtype(array.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
        return np.round(array * 255.0).astype(np.uint8)
    if lo >= 0.0 and hi <= 255.0:
        return np.round(array).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer) and lo >= 0 and hi <= 65535:  # 16-bit data in a wider type
        return np.round(array.astype(np.float32) / 257.0).astype(np.uint8)
    raise DatasetError(
        f"Cannot convert {path} to 8 bits: dtype {array.dtype} with values {lo:g}..{hi:g}; "
        "allowed are uint8, 16-bit integers, bool, or floats in 0..1 or 0..255. Re-export the file as 8-bit PNG."
    )


def _pil_to_array(image: Image.Image, path: Path) -> np.ndarray:
    if image.mode in ("1", "L", "LA", "La"):
        return np.asarray(image.convert("L"))
    if image.mode.startswith("I") or image.mode == "F":
        array = np.asarray(image)
        return _to_uint8(array if array.ndim == 2 else array[..., 0], path)
    return np.asarray(image.convert("RGB"))


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    array = np.asarray(tifffile.imread(path, key=0))
    if array.ndim == 3 and array.shape[0] in (2, 3, 4) and array.shape[2] not in (1, 2, 3, 4):
        array = np.moveaxis(array, 0, -1)  # planar (samples, H, W) -> (H, W, samples)
    if array.ndim == 3 and array.shape[2] in (1, 2):
        array = array[..., 0]  # grey (+ alpha)
    elif array.ndim == 3 and array.shape[2] >= 3:
        array = array[..., :3]  # RGB(+A), also 3-sample MinIsBlack frames (CVC-ClinicDB)
    if array.ndim not in (2, 3):
        raise DatasetError(
            f"TIFF {path} has shape {array.shape}; allowed are H x W (grey) or H x W x 3/4 (colour). "
            "Save one 2D image per file."
        )
    return _to_uint8(array, path)


def _read_array(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to ``H x W`` (grey) or ``H x W x 3`` (RGB) uint8, with a tifffile fallback."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            return _pil_to_array(image, path)
    except DatasetError:
        raise
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, struct.error...) on corrupt files
        pil_error = exc
    if path.suffix.lower() in _TIFF_EXTENSIONS:
        try:
            return _read_tiff(path)
        except DatasetError:
            raise
        except Exception as exc:
            raise DatasetError(
                f"Cannot read TIFF file {path}: Pillow failed ({pil_error}) and tifffile failed ({exc}). "
                "The file is corrupt or truncated; re-export it (or delete the pair)."
            ) from exc
    raise DatasetError(
        f"Cannot read image file {path}: {pil_error}. The file is corrupt, truncated or not an image; "
        "re-export it (or delete it together with its image/mask)."
    ) from pil_error


def _check_mask_threshold(threshold: int) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 0 <= threshold <= 254:
        raise ValueError(
            f"mask_threshold must be an int in 0..254 (foreground is mask > threshold), got {threshold!r}; "
            f"the default {DEFAULT_MASK_THRESHOLD} suits 0/255 masks, 0 suits 0/1 label masks."
        )


def read_image(path: str | os.PathLike[str], in_channels: int = 3) -> np.ndarray:
    """Read an image as ``H x W x in_channels`` uint8.

    Grey images are replicated to 3 channels for ``in_channels=3``; colour images are reduced to luminance
    (ITU-R 601-2, as Pillow's ``convert("L")``) for ``in_channels=1``. 16-bit images are scaled to 8 bits.

    Args:
        path: image file (png, jpg, jpeg, bmp, tif, tiff).
        in_channels: 1 or 3.

    Returns:
        uint8 array ``H x W x in_channels``.

    Raises:
        DatasetError: the file cannot be decoded (corrupt, truncated, unsupported).
        ValueError: ``in_channels`` is not 1 or 3.
    """
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels!r}.")
    array = _read_array(path)
    if in_channels == 3:
        return np.ascontiguousarray(np.repeat(array[..., None], 3, axis=2)) if array.ndim == 2 else array
    if array.ndim == 3:
        array = np.asarray(Image.fromarray(array).convert("L"))
    return array[..., None]


def _read_grey_mask(path: str | os.PathLike[str]) -> np.ndarray:
    array = _read_array(path)
    if array.ndim == 3:
        array = np.asarray(Image.fromarray(array).convert("L"))
    return array


def _binarise(grey: np.ndarray, threshold: int, path: Path) -> np.ndarray:
    mask = (grey > threshold).astype(np.uint8)
    if logger.isEnabledFor(logging.DEBUG):
        non_binary = int(np.count_nonzero((grey != 0) & (grey != 255)))
        logger.debug("Mask %s: %d pixel(s) not in {0, 255} before thresholding at > %d", path, non_binary, threshold)
    if not mask.any() and grey.any():
        logger.warning(
            "Mask %s has non-zero values (max %d) but none above the threshold %d, so it is empty after "
            "binarisation; if masks are stored as 0/1 labels, pass mask_threshold=0 or rescale them to 0/255.",
            path,
            int(grey.max()),
            threshold,
        )
    return mask


def read_mask(path: str | os.PathLike[str], threshold: int = DEFAULT_MASK_THRESHOLD) -> np.ndarray:
    """Read a mask as ``H x W`` uint8 in {0, 1}: grey (luminance of a colour mask) ``> threshold``.

    Args:
        path: mask file.
        threshold: foreground is ``grey > threshold``; 127 (default) maps 127 -> 0 and 128 -> 1 and removes
            JPEG noise around 0 and 255.

    Returns:
        uint8 array ``H x W`` with values 0 and 1.

    Raises:
        DatasetError: the file cannot be decoded.
        ValueError: the threshold is not an int in 0..254.
    """
    _check_mask_threshold(threshold)
    return _binarise(_read_grey_mask(path), threshold, Path(path))


def _size_mismatch(pair: Pair, image_shape: tuple[int, ...], mask_shape: tuple[int, ...]) -> str:
    return (
        f"image {pair.image_path} is {image_shape[1]}x{image_shape[0]} (WxH) but mask {pair.mask_path} is "
        f"{mask_shape[1]}x{mask_shape[0]}; a mask must have exactly its image's size, re-export the mask"
    )


@dataclass
class ValidationReport:
    """Outcome of :func:`validate_pairs`.

    Attributes:
        n_pairs: number of pairs checked.
        errors: one line per unreadable file or image/mask size mismatch (each names the file).
        warnings: non-fatal findings (e.g. masks that become empty only because of the threshold).
        sizes: stem -> (height, width) of every readable image.
        foreground_fraction: stem -> fraction of mask pixels that are foreground after binarisation.
        n_empty_masks: masks with no foreground pixel.
        n_non_binary_masks: masks with at least one value outside {0, 255} before binarisation.
    """

    n_pairs: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    foreground_fraction: dict[str, float] = field(default_factory=dict)
    n_empty_masks: int = 0
    n_non_binary_masks: int = 0

    @property
    def ok(self) -> bool:
        """True when no error was found."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary."""
        return {
            "n_pairs": self.n_pairs,
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "sizes": {k: list(v) for k, v in self.sizes.items()},
            "foreground_fraction": dict(self.foreground_fraction),
            "n_empty_masks": self.n_empty_masks,
            "n_non_binary_masks": self.n_non_binary_masks,
        }


def validate_pairs(
    pairs: Sequence[Pair],
    *,
    mask_threshold: int = DEFAULT_MASK_THRESHOLD,
    raise_on_error: bool = True,
) -> ValidationReport:
    """Decode every image and mask: corrupt/truncated files and size mismatches.

    Args:
        pairs: pairs from :func:`scan_pairs`.
        mask_threshold: binarisation threshold (see :func:`read_mask`).
        raise_on_error: raise one :class:`DatasetError` listing every problem (default) instead of only
            recording them in the report.

    Returns:
        The report (also when ``raise_on_error`` is False and errors were found).

    Raises:
        DatasetError: when ``raise_on_error`` and at least one file is unreadable or sizes differ.
    """
    _check_mask_threshold(mask_threshold)
    report = ValidationReport(n_pairs=len(pairs))
    for pair in pairs:
        try:
            image = _read_array(pair.image_path)
        except DatasetError as exc:
            report.errors.append(str(exc))
            image = None
        try:
            grey = _read_grey_mask(pair.mask_path)
        except DatasetError as exc:
            report.errors.append(str(exc))
            continue
        if image is None:
            continue
        report.sizes[pair.stem] = (int(image.shape[0]), int(image.shape[1]))
        if image.shape[:2] != grey.shape[:2]:
            report.errors.append(_size_mismatch(pair, image.shape, grey.shape))
            continue
        if np.count_nonzero((grey != 0) & (grey != 255)):
            report.n_non_binary_masks += 1
        mask = grey > mask_threshold
        n_fg = int(np.count_nonzero(mask))
        report.foreground_fraction[pair.stem] = n_fg / mask.size
        if n_fg == 0:
            report.n_empty_masks += 1
            if grey.any():
                report.warnings.append(
                    f"mask {pair.mask_path} has values up to {int(grey.max())} but none > {mask_threshold}: "
                    "it is empty after binarisation (0/1 label masks need mask_threshold=0)"
                )
    logger.info(
        "Validated %d pairs: %d error(s), %d empty mask(s), %d mask(s) with values outside {0, 255}",
        report.n_pairs,
        len(report.errors),
        report.n_empty_masks,
        report.n_non_binary_masks,
    )
    if report.errors and raise_on_error:
        raise DatasetError(f"{len(report.errors)} problem(s) in {len(pairs)} pairs:\n- " + "\n- ".join(report.errors))
    return report


def load_groups(data_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Read ``DIR/groups.csv`` (columns ``stem,group``) if present.

    Groups are video sequences, patients or any set of images that must never be split apart.

    Args:
        data_dir: dataset folder.

    Returns:
        stem -> group label; empty when the file does not exist.

    Raises:
        DatasetError: missing columns, an empty value, or a stem given two different groups.
    """
    path = Path(data_dir) / GROUPS_FILE
    if not path.is_file():
        return {}
    groups: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        if "stem" not in columns or "group" not in columns:
            raise DatasetError(
                f"{path} has columns {columns}; it needs a header with the columns 'stem' and 'group' "
                "(one row per image, e.g. '112,seq-6')."
            )
        for line_no, raw_row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in raw_row.items() if isinstance(v, str | None)}
            stem, group = row.get("stem", ""), row.get("group", "")
            if not stem or not group:
                raise DatasetError(f"{path} line {line_no}: empty stem or group ({row}); fill both columns.")
            if groups.get(stem, group) != group:
                raise DatasetError(
                    f"{path} line {line_no}: stem {stem!r} is in group {groups[stem]!r} and {group!r}; "
                    "give each stem exactly one group."
                )
            groups[stem] = group
    return groups


def load_dataset_info(data_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the optional provenance file ``DIR/dataset.yaml``.

    Args:
        data_dir: dataset folder.

    Returns:
        Its content as a dict; empty when the file does not exist.

    Raises:
        DatasetError: the file is not valid YAML or is not a mapping.
    """
    path = Path(data_dir) / INFO_FILE
    if not path.is_file():
        return {}
    try:
        info = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path} is not valid YAML ({exc}); fix or delete it.") from exc
    if info is None:
        return {}
    if not isinstance(info, dict):
        raise DatasetError(f"{path} holds a {type(info).__name__}; it must be a YAML mapping (key: value).")
    return info


def _file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def dataset_fingerprint(data_dir: str | os.PathLike[str]) -> str:
    r"""Content-addressed fingerprint of a dataset folder.

    sha256 over the sorted lines ``<relative posix path>\\t<sha256 of the file>`` of every image file in
    ``images/`` and ``masks/`` (same extension filter as :func:`scan_pairs`; ``groups.csv`` and
    ``dataset.yaml`` are not included). Independent of the folder's location and of file times.

    Args:
        data_dir: dataset folder.

    Returns:
        64-character hex digest.

    Raises:
        DatasetError: ``images/`` or ``masks/`` is missing.
    """
    root = Path(data_dir)
    entries: list[tuple[str, Path]] = []
    for sub in ("images", "masks"):
        folder = root / sub
        _require_folder(folder, sub.capitalize())
        for entry in os.scandir(folder):
            path = Path(entry.path)
            if not entry.name.startswith(".") and entry.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
                entries.append((f"{sub}/{entry.name}", path))
    digest = hashlib.sha256()
    for rel, path in sorted(entries):
        digest.update(f"{rel}\t{_file_sha256(path)}\n".encode())
    return digest.hexdigest()


Transform = Callable[..., Mapping[str, Any]]


def _image_to_tensor(image: Any, in_channels: int) -> torch.Tensor:
    if isinstance(image, torch.Tensor):  # e.g. albumentations ToTensorV2: C x H x W
        tensor = image.float()
        return tensor if tensor.ndim == 3 else tensor.unsqueeze(0)
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.dtype == np.uint8:
        array = normalize_image(array, in_channels)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32))


def _mask_to_tensor(mask: Any) -> torch.Tensor:
    tensor = mask.float() if isinstance(mask, torch.Tensor) else torch.from_numpy(np.asarray(mask, np.float32))
    if tensor.ndim == 3 and tensor.shape[-1] == 1 and not isinstance(mask, torch.Tensor):
        tensor = tensor[..., 0]
    return tensor if tensor.ndim == 3 else tensor.unsqueeze(0)


class SegmentationDataset(torch.utils.data.Dataset):
    """Binary segmentation samples from a folder dataset.

    Each item is ``{"image": float32 C x H x W, "mask": float32 1 x H x W in {0, 1}, "stem": str}``.

    The image is normalised exactly once: a ``transform`` from :func:`lgmsnet.data.build_transforms` ends with
    ``Normalize`` and returns float32, which is used as is; when there is no transform, or the transform
    returns uint8, the dataset applies :func:`lgmsnet.data.transforms.normalize_image` (ImageNet statistics for
    RGB, mean/std 0.5 for grey). Without a transform, samples keep their file size (batching then needs
    equal sizes, e.g. a cache from :func:`lgmsnet.data.build_cache`).

    Args:
        data_dir: dataset folder, or a sequence of :class:`Pair` (then groups/info are empty).
        stems: keep only these stems, in this order (e.g. ``manifest.train``); None keeps all.
        in_channels: 3 (RGB) or 1 (grey).
        transform: albumentations-style callable ``t(image=HxWxC uint8, mask=HxW uint8) -> {"image", "mask"}``.
        mask_threshold: mask binarisation threshold (see :func:`read_mask`).

    Raises:
        DatasetError: the folder is invalid (see :func:`scan_pairs`) or a requested stem is absent.
        ValueError: ``in_channels`` or ``mask_threshold`` out of range.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | Sequence[Pair],
        *,
        stems: Sequence[str] | None = None,
        in_channels: int = 3,
        transform: Transform | None = None,
        mask_threshold: int = DEFAULT_MASK_THRESHOLD,
    ) -> None:
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 (grey) or 3 (RGB), got {in_channels!r}.")
        _check_mask_threshold(mask_threshold)
        if isinstance(data_dir, (str, os.PathLike)):
            self.root: Path | None = Path(data_dir)
            pairs = scan_pairs(self.root)
            self.groups = load_groups(self.root)
            self.info = load_dataset_info(self.root)
        else:
            self.root = None
            pairs = list(data_dir)
            self.groups = {}
            self.info = {}
        if stems is not None:
            by_stem = {p.stem: p for p in pairs}
            missing = [s for s in stems if s not in by_stem]
            if missing:
                raise DatasetError(
                    f"{len(missing)} requested stem(s) are not in dataset {self.root or '(pair list)'}: "
                    f"{_listed(missing)}; regenerate the split manifest for this dataset (make_splits)."
                )
            pairs = [by_stem[s] for s in stems]
        self.pairs: list[Pair] = pairs
        self.in_channels = in_channels
        self.transform = transform
        self.mask_threshold = mask_threshold

    @property
    def stems(self) -> list[str]:
        """Stems in item order."""
        return [p.stem for p in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair = self.pairs[index]
        image = read_image(pair.image_path, self.in_channels)
        mask = read_mask(pair.mask_path, self.mask_threshold)
        if image.shape[:2] != mask.shape:
            raise DatasetError(_size_mismatch(pair, image.shape, mask.shape))
        if self.transform is not None:
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return {
            "image": _image_to_tensor(image, self.in_channels),
            "mask": _mask_to_tensor(mask),
            "stem": pair.stem,
        }
