"""Importers: public segmentation datasets, as users download them, to the project's folder layout.

Each importer reads the official archive (``.zip``) or its extracted folder, handles the dataset's quirks, and
writes a folder dataset (see :mod:`lgmsnet.data.folder`)::

    OUT/images/<stem>.<ext>   JPEG and PNG images copied byte for byte; TIFF and BMP converted losslessly to PNG
    OUT/masks/<stem>.png      ALWAYS binarised 8-bit grey PNG with values {0, 255} (threshold stated per format)
    OUT/groups.csv            stem,group where the dataset has groups (CVC-ClinicDB video sequence, BUS-BRA patient)
    OUT/classes.csv           stem,class where the dataset has classes (BUSI, BUS-BRA pathology)
    OUT/official_splits.csv   stem,split (ISIC 2018: Training / Validation / Test)
    OUT/source_notes/         licence, attribution and metadata files shipped with the data, copied verbatim
    OUT/dataset.yaml          provenance: format, source (path, archive sha256), homepage, citation, licence,
                              thresholds, counts (n_pairs, n_skipped with reasons, n_excluded), synthetic: false

The output is built in a hidden temporary folder next to ``OUT`` and renamed into place only when complete, so a
failing import (e.g. a corrupt image) leaves no output. A non-empty ``OUT`` is replaced only with
``overwrite=True``. Items that cannot be paired (image without mask, mask without image, size mismatch, name
outside the official pattern) are skipped, logged and listed with their reason in ``dataset.yaml``; a file that
cannot be decoded, or a layout that is not recognised, raises :class:`DatasetError` naming the archive/file and
the fix.

Licences: every dataset here is public but NOT open-licensed for all uses. ``dataset.yaml`` records what the
official source says to the best of our knowledge; check the official terms before any use.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import inspect
import io
import logging
import os
import re
import shutil
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import yaml
from PIL import Image

from lgmsnet.data._fs import swap_in_dir, temporary_sibling
from lgmsnet.data.folder import (
    DEFAULT_MASK_THRESHOLD,
    IMAGE_EXTENSIONS,
    DatasetError,
    dataset_fingerprint,
    load_dataset_info,
    load_groups,
    read_image,
    read_mask,
    scan_pairs,
)

__all__ = [
    "CVC_CLINICDB_SEQUENCES",
    "IMPORTERS",
    "ImportReport",
    "SkippedItem",
    "cvc_clinicdb_sequence",
    "import_busi",
    "import_bus_bra",
    "import_cvc_clinicdb",
    "import_dataset",
    "import_folder",
    "import_isic2018",
    "import_kvasir_seg",
    "import_ph2",
]

logger = logging.getLogger(__name__)

IMPORTER_VERSION = 1
CHECK_TERMS = "check the official terms before any use"

#: CVC-ClinicDB: first and last frame of each of the 29 video sequences (official README.txt).
CVC_CLINICDB_SEQUENCES: tuple[tuple[int, int], ...] = (
    (1, 25), (26, 50), (51, 67), (68, 78), (79, 103), (104, 126), (127, 151), (152, 177), (178, 199),
    (200, 205), (206, 227), (228, 252), (253, 277), (278, 297), (298, 317), (318, 342), (343, 363),
    (364, 383), (384, 408), (409, 428), (429, 447), (448, 466), (467, 478), (479, 503), (504, 528),
    (529, 546), (547, 571), (572, 591), (592, 612),
)  # fmt: skip
_CVC_ENDS = [end for _, end in CVC_CLINICDB_SEQUENCES]
_CVC_TRUTH = ("Ground Truth", "GroundTruth", "Ground_Truth")

_COPY_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png"})  # kept byte for byte; everything else becomes PNG
_PNG_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I;16"})  # saved by Pillow as PNG without loss
_JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
_UNSUPPORTED_ARCHIVES = (".rar", ".7z", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".gz")
_MAX_LISTED = 10
_MASK_PNG_LEVEL = 3  # zlib level for the binary mask PNGs: ~3x faster than the default 6, files stay a few kB


@dataclass(frozen=True)
class _Meta:
    """What the official source says about one dataset (to the best of our knowledge)."""

    name: str
    homepage: str
    citation: str
    licence: str
    terms: str


_META: dict[str, _Meta] = {
    "kvasir-seg": _Meta(
        name="Kvasir-SEG",
        homepage="https://datasets.simula.no/kvasir-seg/",
        citation=(
            "Jha D, Smedsrud PH, Riegler MA, Halvorsen P, de Lange T, Johansen D, Johansen HD. Kvasir-SEG: A Segmented "
            "Polyp Dataset. MultiMedia Modeling (MMM) 2020, LNCS 11962, 451-462. doi:10.1007/978-3-030-37734-2_37"
        ),
        licence="research/education only, non-commercial; cite the paper",
        terms=(
            "Official README: use is restricted to research and educational purposes; commercial use is forbidden "
            "without prior written permission; a reference to the dataset paper must be included."
        ),
    ),
    "cvc-clinicdb": _Meta(
        name="CVC-ClinicDB",
        homepage="https://polyp.grand-challenge.org/CVCClinicDB/",
        citation=(
            "Bernal J, Sanchez FJ, Fernandez-Esparrach G, Gil D, Rodriguez C, Vilarino F. WM-DOVA maps for accurate "
            "polyp highlighting in colonoscopy: Validation vs. saliency maps from physicians. Comput Med Imaging "
            "Graph 43:99-111, 2015. doi:10.1016/j.compmedimag.2015.02.007"
        ),
        licence="research/education only, non-commercial; cite the paper",
        terms=(
            "Official README.txt: 'Original' images are property of Hospital Clinic, Barcelona; 'Ground Truth' images "
            "of the Computer Vision Center, Barcelona; use is restricted to research and educational purposes and "
            "forbidden for commercial purposes; cite the paper."
        ),
    ),
    "busi": _Meta(
        name="BUSI (Breast Ultrasound Images Dataset)",
        homepage="https://scholar.cu.edu.eg/?q=afahmy/pages/dataset",
        citation=(
            "Al-Dhabyani W, Gomaa M, Khaled H, Fahmy A. Dataset of breast ultrasound images. Data in Brief "
            "28:104863, 2020. doi:10.1016/j.dib.2019.104863"
        ),
        licence="research/education only, non-commercial (assumed); cite the paper",
        terms=(
            "The authors' page distributes the data for research and asks for a citation of the paper; mirrors "
            "(Kaggle, Hugging Face) state differing licences. No explicit commercial-use grant is known to us."
        ),
    ),
    "isic2018": _Meta(
        name="ISIC 2018 Task 1 (lesion boundary segmentation)",
        homepage="https://challenge.isic-archive.com/data/#2018",
        citation=(
            "Codella N et al. Skin Lesion Analysis Toward Melanoma Detection 2018: A Challenge Hosted by the "
            "International Skin Imaging Collaboration (ISIC). arXiv:1902.03368; and Tschandl P, Rosendahl C, "
            "Kittler H. The HAM10000 dataset. Sci Data 5:180161, 2018. doi:10.1038/sdata.2018.161"
        ),
        licence="CC BY-NC 4.0: non-commercial, attribution required (see source_notes/*LICENSE.txt)",
        terms=(
            "The challenge archives ship LICENSE.txt (Creative Commons Attribution-NonCommercial 4.0) and "
            "ATTRIBUTION.txt (image contributors); both are copied to source_notes/ when present."
        ),
    ),
    "ph2": _Meta(
        name="PH2 dermoscopic image database",
        homepage="https://www.fc.up.pt/addi/ph2%20database.html",
        citation=(
            "Mendonca T, Ferreira PM, Marques JS, Marcal ARS, Rozeira J. PH2 - A dermoscopic image database for "
            "research and benchmarking. IEEE EMBC 2013, 5437-5440. doi:10.1109/EMBC.2013.6610779"
        ),
        licence="research/benchmarking only, non-commercial (assumed); cite the paper",
        terms="The paper states the database is made freely available for research and benchmarking purposes.",
    ),
    "bus-bra": _Meta(
        name="BUS-BRA breast ultrasound dataset",
        homepage="https://doi.org/10.5281/zenodo.8231412",
        citation=(
            "Gomez-Flores W, Gregorio-Calas MJ, Coelho de Albuquerque Pereira W. BUS-BRA: A Breast Ultrasound "
            "Dataset for Assessing Computer-aided Diagnosis Systems. Med Phys 51(4):3110-3123, 2024. "
            "doi:10.1002/mp.16812"
        ),
        licence="academic and research purposes (non-commercial assumed); cite the paper",
        terms=(
            "The paper states the dataset is publicly available for academic and research purposes through an "
            "open-access repository (Zenodo); read the licence shown on the Zenodo record."
        ),
    ),
    "folder": _Meta(
        name="folder dataset",
        homepage="",
        citation="",
        licence="unknown: the folder format carries no licence; record the dataset's own terms",
        terms="",
    ),
}


@dataclass(frozen=True)
class SkippedItem:
    """A source item left out of the import.

    Attributes:
        item: the item as named in the source (archive member or path relative to the source).
        reason: why it was left out.
    """

    item: str
    reason: str


@dataclass
class ImportReport:
    """Outcome of an import.

    Attributes:
        fmt: importer name (a key of :data:`IMPORTERS`).
        source: the source archive or folder.
        out_dir: the folder dataset written.
        n_pairs: image/mask pairs written.
        skipped: items that could not be paired, with their reason.
        excluded: items left out on purpose, as ``reason -> count`` (e.g. BUSI ``normal`` class).
        n_groups: number of distinct groups in ``groups.csv`` (0 when the dataset has no groups).
        n_empty_masks: written masks without any foreground pixel.
        warnings: non-fatal findings (also logged).
    """

    fmt: str
    source: Path
    out_dir: Path
    n_pairs: int
    skipped: list[SkippedItem] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)
    n_groups: int = 0
    n_empty_masks: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def n_skipped(self) -> int:
        """Number of skipped items."""
        return len(self.skipped)

    @property
    def n_excluded(self) -> int:
        """Number of items left out on purpose."""
        return sum(self.excluded.values())

    def summary(self) -> str:
        """One line: what was written where, and what was left out."""
        parts = [f"imported {self.n_pairs} {self.fmt} pairs from {self.source} to {self.out_dir}"]
        parts.append(f"{self.n_skipped} skipped")
        if self.excluded:
            parts.append("excluded " + ", ".join(f"{n} {why}" for why, n in sorted(self.excluded.items())))
        if self.n_groups:
            parts.append(f"{self.n_groups} groups")
        if self.n_empty_masks:
            parts.append(f"{self.n_empty_masks} empty masks")
        return "; ".join(parts)


def cvc_clinicdb_sequence(frame: int) -> str:
    """Video sequence id (``seq01`` … ``seq29``) of a CVC-ClinicDB frame number.

    Args:
        frame: frame number as in the official file names (1 … 612).

    Returns:
        ``"seqNN"`` with ``NN`` the 1-based sequence index (e.g. 25 -> ``seq01``, 26 -> ``seq02``).

    Raises:
        ValueError: ``frame`` is not an int in 1 … 612.
    """
    if isinstance(frame, bool) or not isinstance(frame, int | np.integer) or not 1 <= frame <= _CVC_ENDS[-1]:
        raise ValueError(
            f"CVC-ClinicDB frame must be an int in 1..{_CVC_ENDS[-1]} (the official file names 1.tif ... "
            f"{_CVC_ENDS[-1]}.tif), got {frame!r}."
        )
    return f"seq{bisect.bisect_left(_CVC_ENDS, int(frame)) + 1:02d}"


# --------------------------------------------------------------------------------------------------------------
# Source: a folder, a zip archive, or a folder holding zip archives, seen as one tree of posix paths.
# --------------------------------------------------------------------------------------------------------------


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return (shown or "(nothing)") + (f" (and {more} more)" if more > 0 else "")


def _parent(rel: str) -> str:
    return rel.rsplit("/", 1)[0] if "/" in rel else ""


def _base(rel: str) -> str:
    return rel.rsplit("/", 1)[-1]


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def _suffix(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


def _stem(name: str) -> str:
    return PurePosixPath(name).stem


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _is_junk(rel: str) -> bool:
    parts = rel.split("/")
    return (
        any(p == "__MACOSX" for p in parts)
        or parts[-1].startswith("._")
        or parts[-1].lower() in _JUNK_NAMES
        or any(p.startswith(".") for p in parts)
    )


@dataclass
class _Entry:
    real: Path | None = None  # a file in a folder source
    archive: int = -1  # index into _Source.zips for an archive member
    member: zipfile.ZipInfo | None = None


class _Source:
    """Read-only view of the source as a tree of posix paths.

    A zip archive's members keep their names; in a folder, files are addressed relative to the folder and the
    members of ``*.zip`` files directly inside it are added as if extracted there (extracted files win over
    archive members of the same name).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zips: list[zipfile.ZipFile] = []
        self.archives: list[Path] = []
        self.files: dict[str, _Entry] = {}
        self.dirs: dict[str, set[str]] = {"": set()}  # folder -> names of sub-folders
        self.dir_files: dict[str, list[str]] = {"": []}  # folder -> names of files
        name = path.name.lower()
        if not path.exists():
            raise DatasetError(f"Source {path} does not exist; pass the downloaded archive (.zip) or its folder.")
        if path.is_file() and name.endswith(_UNSUPPORTED_ARCHIVES):
            raise DatasetError(
                f"Source {path} is a {path.suffix} archive, which is not read directly; extract it (e.g. "
                f"'unrar x' / '7z x' / 'tar xf') and pass the extracted folder, or repack it as .zip."
            )
        try:
            if path.is_dir():
                self._add_folder(path)
            elif zipfile.is_zipfile(path):
                self._add_zip(path)
            else:
                raise DatasetError(
                    f"Source {path} is neither a folder nor a zip archive; pass the downloaded .zip or its folder."
                )
        except BaseException:
            self.close()
            raise
        for rel in self.files:
            folder = _parent(rel)
            self.dir_files.setdefault(folder, []).append(_base(rel))
            while True:
                self.dirs.setdefault(folder, set())
                if not folder:
                    break
                up = _parent(folder)
                self.dirs.setdefault(up, set()).add(_base(folder))
                folder = up

    def _add_folder(self, root: Path) -> None:
        zips: list[Path] = []
        for folder, subdirs, names in os.walk(root):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d != "__MACOSX")
            base = Path(folder).relative_to(root).as_posix()
            base = "" if base == "." else base
            for name in sorted(names):
                rel = _join(base, name)
                if _is_junk(rel):
                    continue
                if not base and name.lower().endswith(".zip"):
                    zips.append(Path(folder) / name)
                self.files[rel] = _Entry(real=Path(folder) / name)
        for archive in zips:
            if zipfile.is_zipfile(archive):
                self._add_zip(archive)

    def _add_zip(self, archive: Path) -> None:
        try:
            handle = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, OSError) as exc:
            raise DatasetError(f"Cannot open zip archive {archive}: {exc}; re-download it.") from exc
        self.zips.append(handle)
        self.archives.append(archive)
        index = len(self.zips) - 1
        for info in handle.infolist():
            parts = [p for p in info.filename.replace("\\", "/").split("/") if p not in ("", ".")]
            rel = "/".join(parts)
            if info.is_dir() or not rel or _is_junk(rel) or ".." in parts:
                continue
            self.files.setdefault(rel, _Entry(archive=index, member=info))

    def close(self) -> None:
        for handle in self.zips:
            handle.close()

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self, rel: str) -> str:
        """Human name of an item: ``archive.zip:member`` or the path of the file."""
        entry = self.files[rel]
        if entry.real is not None:
            return str(entry.real)
        return f"{self.archives[entry.archive].name}:{entry.member.filename if entry.member else rel}"

    def item(self, rel: str) -> str:
        """Portable name of an item for reports: ``archive.zip:member`` or the path relative to the source."""
        entry = self.files.get(rel)
        if entry is None or entry.real is not None:
            return rel
        return self.describe(rel)

    def top_level(self) -> list[str]:
        """Entries at the top of the tree (for error messages)."""
        return sorted([d + "/" for d in self.dirs[""]] + self.dir_files.get("", []))

    def subdir(self, folder: str, *names: str) -> str | None:
        """The sub-folder of ``folder`` whose name matches one of ``names`` case-insensitively (first wins)."""
        present = {d.lower(): d for d in self.dirs.get(folder, ())}
        for name in names:
            if name.lower() in present:
                return _join(folder, present[name.lower()])
        return None

    def files_in(self, folder: str) -> list[str]:
        """Paths of the files directly in ``folder``, sorted."""
        return sorted(_join(folder, n) for n in self.dir_files.get(folder, []))

    def find_dirs(self, predicate: Callable[[str], bool]) -> list[str]:
        """All folders (``""`` is the root) satisfying ``predicate``, shallowest first."""
        return sorted((d for d in self.dirs if predicate(d)), key=lambda d: (d.count("/") + bool(d), d))

    def local(self, rel: str, scratch: Path) -> Path:
        """A readable local path for ``rel``: the file itself, or the member extracted under ``scratch``."""
        entry = self.files[rel]
        if entry.real is not None:
            return entry.real
        scratch.mkdir(parents=True, exist_ok=True)
        dest = scratch / _base(rel)
        try:
            with self.zips[entry.archive].open(entry.member) as src, dest.open("wb") as out:  # type: ignore[arg-type]
                shutil.copyfileobj(src, out)
        except Exception as exc:  # BadZipFile, OSError, EOFError, zlib.error ...
            raise DatasetError(
                f"Cannot extract {self.describe(rel)}: {exc}; the archive is corrupt or truncated, re-download it."
            ) from exc
        return dest

    def read_text(self, rel: str) -> str:
        """Decode a small text member (UTF-8 with BOM tolerated, Latin-1 fallback)."""
        entry = self.files[rel]
        if entry.real is not None:
            data = entry.real.read_bytes()
        else:
            data = self.zips[entry.archive].read(entry.member)  # type: ignore[arg-type]
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return data.decode("latin-1")


# --------------------------------------------------------------------------------------------------------------
# Writer: builds the folder dataset in a temporary sibling folder and swaps it in when complete.
# --------------------------------------------------------------------------------------------------------------


def _check_output(target: Path, source: Path, overwrite: bool) -> None:
    if target.exists() and not target.is_dir():
        raise DatasetError(f"Output {target} exists and is a file; choose a folder path for --out.")
    if target.exists() and not overwrite and any(target.iterdir()):
        raise DatasetError(
            f"Output folder {target} exists and is not empty; pass overwrite=True (--overwrite) to replace it "
            "or choose a new folder."
        )
    src, out = source.resolve(), target.resolve()
    if src == out or out in src.parents:
        raise DatasetError(
            f"Output folder {target} is the source {source} or contains it; importing there would delete the "
            "source. Choose an output folder outside the source."
        )


class _Writer:
    """Accumulates pairs, skips and tables in ``tmp``; see :func:`_run_import`."""

    def __init__(self, fmt: str, source: _Source, tmp: Path) -> None:
        self.fmt = fmt
        self.source = source
        self.tmp = tmp
        self.images = tmp / "images"
        self.masks = tmp / "masks"
        self.scratch = tmp / ".scratch"
        self.images.mkdir(parents=True)
        self.masks.mkdir()
        self.stems: list[str] = []
        self._stems_seen: set[str] = set()
        self.skipped: list[SkippedItem] = []
        self.excluded: dict[str, int] = {}
        self.excluded_reasons: dict[str, str] = {}
        self.warnings: list[str] = []
        self.groups: dict[str, str] = {}
        self.tables: dict[str, tuple[str, dict[str, str]]] = {}  # file -> (column, stem -> value)
        self.notes: list[str] = []
        self.n_empty = 0
        self.n_converted = 0
        self.n_multi_mask = 0

    def skip(self, rel: str, reason: str) -> None:
        item = self.source.item(rel)
        logger.info("Skipping %s: %s", item, reason)
        self.skipped.append(SkippedItem(item, reason))

    def exclude(self, key: str, reason: str, count: int = 1) -> None:
        self.excluded[key] = self.excluded.get(key, 0) + count
        self.excluded_reasons[key] = reason

    def warn(self, message: str) -> None:
        logger.warning("%s", message)
        self.warnings.append(message)

    def table(self, filename: str, column: str, stem: str, value: str) -> None:
        self.tables.setdefault(filename, (column, {}))[1][stem] = value

    def copy_note(self, rel: str, name: str | None = None) -> None:
        """Copy a licence/metadata file verbatim to ``source_notes/``."""
        notes = self.tmp / "source_notes"
        notes.mkdir(exist_ok=True)
        dest = notes / (name or _base(rel))
        entry = self.source.files[rel]
        if entry.real is not None:
            shutil.copyfile(entry.real, dest)
        else:
            shutil.move(self.source.local(rel, self.scratch / "notes"), dest)
        if dest.name not in self.notes:
            self.notes.append(dest.name)

    def _decode_error(self, rel: str, exc: Exception) -> DatasetError:
        return DatasetError(
            f"Cannot decode {self.source.describe(rel)} ({exc}). The file is corrupt or truncated: re-download the "
            f"dataset ({_META[self.fmt].homepage or 'from its source'}) or delete the file and its image/mask "
            "from an extracted folder, then import again."
        )

    def add(self, stem: str, image: str, masks: Sequence[str], threshold: int) -> bool:
        """Write one pair; returns False (and records a skip) when it cannot be paired.

        Raises:
            DatasetError: a file cannot be decoded.
        """
        if stem in self._stems_seen:
            self.skip(image, f"stem {stem!r} was already imported from another file")
            return False
        scratch = self.scratch / str(len(self.stems))
        try:
            local = self.source.local(image, scratch)
            ext = _suffix(image)
            pixels: np.ndarray | None = None
            try:
                if ext in _COPY_EXTENSIONS:
                    height, width = _probe(local)
                else:
                    pixels = read_image(local, 3)
                    height, width = pixels.shape[:2]
            except DatasetError as exc:
                raise self._decode_error(image, exc) from exc
            merged = np.zeros((height, width), dtype=bool)
            for rel in masks:
                try:
                    mask = read_mask(self.source.local(rel, scratch / "m"), threshold)
                except DatasetError as exc:
                    raise self._decode_error(rel, exc) from exc
                if mask.shape != (height, width):
                    self.skip(
                        image,
                        f"mask {_base(rel)} is {mask.shape[1]}x{mask.shape[0]} (WxH) but the image is "
                        f"{width}x{height}; a mask must have its image's size",
                    )
                    return False
                merged |= mask.astype(bool)
            if pixels is None:
                dest = self.images / f"{stem}{ext}"
                if local.is_relative_to(self.tmp):
                    os.replace(local, dest)
                else:
                    shutil.copyfile(local, dest)
            else:
                self._to_png(local, pixels, self.images / f"{stem}.png")
                self.n_converted += 1
            mask_png = Image.fromarray(merged.astype(np.uint8) * 255)
            mask_png.save(self.masks / f"{stem}.png", compress_level=_MASK_PNG_LEVEL)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if not merged.any():
            self.n_empty += 1
        if len(masks) > 1:
            self.n_multi_mask += 1
        self.stems.append(stem)
        self._stems_seen.add(stem)
        return True

    @staticmethod
    def _to_png(local: Path, pixels: np.ndarray, dest: Path) -> None:
        """Lossless PNG: Pillow's own mode when PNG holds it, else the decoded 8-bit pixels (e.g. CVC TIFFs)."""
        try:
            with Image.open(local) as image:
                image.load()
                if image.mode in _PNG_MODES:
                    image.save(dest)
                    return
        except Exception:  # Pillow cannot open 3-sample MinIsBlack TIFFs; read_image already decoded them
            logger.debug("Pillow cannot re-encode %s; writing the tifffile-decoded pixels", local)
        grey = pixels.ndim == 3 and bool((pixels == pixels[..., :1]).all())
        Image.fromarray(pixels[..., 0] if grey else pixels).save(dest)


def _probe(path: Path) -> tuple[int, int]:
    """(height, width) of a JPEG/PNG to be copied, decoding it fully (JPEG at 1/8 scale) to catch corrupt files.

    Raises:
        DatasetError: Pillow cannot decode the file (corrupt, truncated, not an image).
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.format == "JPEG":  # DCT-domain downscaling still reads every entropy-coded block
                image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
            image.load()
    except Exception as exc:  # Pillow raises OSError, SyntaxError, struct.error ... on corrupt files
        raise DatasetError(f"cannot decode {path.name}: {exc}") from exc
    return height, width


def _run_import(
    fmt: str,
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    overwrite: bool,
    body: Callable[[_Source, _Writer], dict[str, Any]],
) -> ImportReport:
    """Open the source, run ``body`` into a temporary sibling of ``out``, write metadata, validate, swap in."""
    source_path, target = Path(src), Path(out)
    _check_output(target, source_path, overwrite)
    with _Source(source_path) as source:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_sibling(target, "import")
        try:
            writer = _Writer(fmt, source, tmp)
            details = body(source, writer)
            shutil.rmtree(writer.scratch, ignore_errors=True)
            if writer.skipped:
                logger.warning(
                    "%d item(s) of %s could not be paired and were skipped (listed in dataset.yaml)",
                    len(writer.skipped),
                    source_path,
                )
            if not writer.stems:
                raise DatasetError(
                    f"No image/mask pair could be imported from {source_path} as {fmt}; "
                    f"{len(writer.skipped)} item(s) skipped: "
                    + _listed([f"{s.item} ({s.reason})" for s in writer.skipped])
                    + ". Check that the source is the official download of this dataset."
                )
            _write_tables(writer)
            scan_pairs(tmp)  # the result must be a valid folder dataset
            info = _provenance(fmt, source, writer, details)
            (tmp / "dataset.yaml").write_text(
                yaml.safe_dump(info, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8"
            )
            if target.exists() and not any(target.iterdir()):
                target.rmdir()
            swap_in_dir(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    report = ImportReport(
        fmt=fmt,
        source=source_path,
        out_dir=target,
        n_pairs=len(writer.stems),
        skipped=list(writer.skipped),
        excluded=dict(writer.excluded),
        n_groups=len({g for s, g in writer.groups.items() if s in writer._stems_seen}),
        n_empty_masks=writer.n_empty,
        warnings=list(writer.warnings),
    )
    logger.info("%s", report.summary())
    return report


def _write_tables(writer: _Writer) -> None:
    kept = set(writer.stems)
    tables = dict(writer.tables)
    if writer.groups:
        tables["groups.csv"] = ("group", writer.groups)
    for filename, (column, values) in tables.items():
        with (writer.tmp / filename).open("w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle, lineterminator="\n")
            out.writerow(["stem", column])
            out.writerows([stem, values[stem]] for stem in sorted(values) if stem in kept)


def _provenance(fmt: str, source: _Source, writer: _Writer, details: dict[str, Any]) -> dict[str, Any]:
    meta = _META[fmt]
    synthetic = bool(details.pop("synthetic", False))
    archives = [{"name": a.name, "sha256": _sha256(a)} for a in source.archives]
    info: dict[str, Any] = {
        "name": details.pop("name", meta.name),
        "format": fmt,
        "synthetic": synthetic,
        "source": {
            "path": str(source.path.resolve()),
            "kind": "zip archive" if source.path.is_file() else "folder",
            "archives": archives,
        },
        "homepage": meta.homepage,
        "citation": meta.citation,
        "licence": f"{meta.licence} — {CHECK_TERMS}",
        "licence_source_says": meta.terms,
        "importer": f"lgmsnet.data.importers ({fmt}), version {IMPORTER_VERSION}",
        "n_pairs": len(writer.stems),
        "n_skipped": len(writer.skipped),
        "skipped": [{"item": s.item, "reason": s.reason} for s in writer.skipped],
        "n_excluded": sum(writer.excluded.values()),
        "excluded": {k: {"count": n, "reason": writer.excluded_reasons[k]} for k, n in sorted(writer.excluded.items())},
        "n_empty_masks": writer.n_empty,
        "images": details.pop("images", "JPEG/PNG copied byte for byte; other formats converted losslessly to PNG")
        + (f" ({writer.n_converted} converted to PNG)" if writer.n_converted else ""),
        "masks": "8-bit grey PNG, values {0, 255}; " + details.pop("masks", ""),
    }
    if writer.groups:
        kept = set(writer.stems)
        info["groups"] = {
            "file": "groups.csv",
            "meaning": details.pop("groups", "group"),
            "n_groups": len({g for s, g in writer.groups.items() if s in kept}),
        }
    tables = {name: column for name, (column, _) in writer.tables.items()}
    if tables:
        info["tables"] = tables
    if writer.notes:
        info["source_notes"] = sorted(writer.notes)
    if writer.warnings:
        info["warnings"] = list(writer.warnings)
    info.update(details)
    info["fingerprint"] = dataset_fingerprint(writer.tmp)
    return info


# --------------------------------------------------------------------------------------------------------------
# Pairing helpers
# --------------------------------------------------------------------------------------------------------------


def _image_files(
    source: _Source, folder: str, writer: _Writer, ignore: Callable[[str], bool] | None = None
) -> dict[str, str]:
    """stem -> path of the image files directly in ``folder``; other files are skipped, duplicates too."""
    by_stem: dict[str, list[str]] = {}
    for rel in source.files_in(folder):
        name = _base(rel)
        if ignore is not None and ignore(name):
            continue
        if _suffix(name) not in IMAGE_EXTENSIONS:
            writer.skip(rel, f"not an image file (allowed extensions: {sorted(IMAGE_EXTENSIONS)})")
            continue
        by_stem.setdefault(_stem(name), []).append(rel)
    result: dict[str, str] = {}
    for stem, rels in sorted(by_stem.items()):
        if len(rels) > 1:
            for rel in rels:
                writer.skip(rel, f"stem {stem!r} has {len(rels)} files; keep exactly one")
        else:
            result[stem] = rels[0]
    return result


def _pair_by_key(
    source: _Source,
    writer: _Writer,
    images: dict[str, str],
    masks: dict[str, str],
) -> list[tuple[str, str, str]]:
    """(key, image, mask) for keys present on both sides; the others are skipped with their reason."""
    for key in sorted(images.keys() - masks.keys()):
        writer.skip(images[key], "no mask with the same name")
    for key in sorted(masks.keys() - images.keys()):
        writer.skip(masks[key], "no image with the same name")
    return [(key, images[key], masks[key]) for key in sorted(images.keys() & masks.keys())]


def _not_found(fmt: str, source: _Source, what: str, expected: str) -> DatasetError:
    meta = _META[fmt]
    where = f" from {meta.homepage}" if meta.homepage else ""
    return DatasetError(
        f"No {what} in {source.path.name}; expected {expected}{where}. Top-level entries found: "
        f"{_listed(source.top_level())}."
    )


def _one_root(fmt: str, source: _Source, candidates: list[str], preferred: Callable[[str], bool], what: str) -> str:
    if len(candidates) > 1:
        better = [c for c in candidates if preferred(c)]
        candidates = better or candidates
    if len(candidates) > 1:
        raise DatasetError(
            f"{source.path} holds {len(candidates)} {what} folders ({_listed([c or '.' for c in candidates])}); "
            "pass the folder (or archive) of exactly one copy of the dataset."
        )
    return candidates[0]


def _copy_notes(source: _Source, writer: _Writer, folder: str, names: Sequence[str], prefix: str = "") -> None:
    wanted = {n.lower() for n in names}
    for rel in source.files_in(folder):
        if _base(rel).lower() in wanted:
            writer.copy_note(rel, prefix + _base(rel))


# --------------------------------------------------------------------------------------------------------------
# Importers
# --------------------------------------------------------------------------------------------------------------

_JPEG_MASK_RULE = "binarised with grey > 127 (JPEG masks: luminance of the 3-channel mask; removes compression noise)"
_PNG_MASK_RULE = "binarised with grey > 127 (source masks are 0/255)"


def import_kvasir_seg(
    src: str | os.PathLike[str], out: str | os.PathLike[str], *, overwrite: bool = False
) -> ImportReport:
    """Import Kvasir-SEG from the official ``kvasir-seg.zip`` or its extracted folder.

    Layout: ``Kvasir-SEG/images/<id>.jpg`` and ``Kvasir-SEG/masks/<id>.jpg`` (3-channel JPEG masks, binarised with
    ``grey > 127``); ``kavsir_bboxes.json`` is copied to ``source_notes/``. Images are copied byte for byte.

    Args:
        src: the archive or a folder holding ``Kvasir-SEG/`` (or ``images/`` and ``masks/`` directly).
        out: output folder.
        overwrite: replace a non-empty ``out``.

    Returns:
        The import report.

    Raises:
        DatasetError: layout not recognised, undecodable file, non-empty output, no pair.
    """

    def body(source: _Source, writer: _Writer) -> dict[str, Any]:
        def is_kvasir(d: str) -> bool:  # named Kvasir-SEG (or the archive/folder passed is): not any images/ + masks/
            named = _base(d).lower().startswith("kvasir") or (not d and "kvasir" in source.path.name.lower())
            return named and bool(source.subdir(d, "images") and source.subdir(d, "masks"))

        candidates = source.find_dirs(is_kvasir)
        if not candidates:
            raise _not_found(
                "kvasir-seg", source, "Kvasir-SEG/images folder",
                "the official archive kvasir-seg.zip (top folder Kvasir-SEG/ with images/*.jpg and masks/*.jpg) or "
                "its extracted folder (a renamed copy in the images/ + masks/ layout imports with format 'folder')",
            )  # fmt: skip
        root = _one_root("kvasir-seg", source, candidates, lambda d: _base(d).lower() == "kvasir-seg", "Kvasir-SEG")
        images = _image_files(source, source.subdir(root, "images") or "", writer)
        masks = _image_files(source, source.subdir(root, "masks") or "", writer)
        for stem, image, mask in _pair_by_key(source, writer, images, masks):
            writer.add(stem, image, [mask], DEFAULT_MASK_THRESHOLD)
        _copy_notes(source, writer, root, ["kavsir_bboxes.json", "kvasir_bboxes.json", "README.md", "README.txt"])
        return {"layout_root": root or ".", "masks": _JPEG_MASK_RULE, "mask_threshold": DEFAULT_MASK_THRESHOLD}

    return _run_import("kvasir-seg", src, out, overwrite, body)


def import_cvc_clinicdb(
    src: str | os.PathLike[str], out: str | os.PathLike[str], *, overwrite: bool = False
) -> ImportReport:
    """Import CVC-ClinicDB from the official archive or folder.

    Layout: ``CVC-ClinicDB/Original/<n>.tif`` and ``CVC-ClinicDB/Ground Truth/<n>.tif`` (also ``PNG/Original`` and
    ``PNG/Ground Truth``). The frame TIFFs are 3-sample MinIsBlack, which Pillow cannot open: they are decoded with
    tifffile and written as lossless PNG. Stems are the frame numbers (``1`` … ``612``); ``groups.csv`` maps each
    frame to its video sequence ``seq01`` … ``seq29`` (see :func:`cvc_clinicdb_sequence`). Masks: ``grey > 127``.
    When both a TIFF and a PNG copy are present the TIFF (original) copy is used.

    Args:
        src: the archive or a folder holding ``CVC-ClinicDB/``.
        out: output folder.
        overwrite: replace a non-empty ``out``.

    Returns:
        The import report.

    Raises:
        DatasetError: layout not recognised, undecodable file, non-empty output, no pair.
    """

    def body(source: _Source, writer: _Writer) -> dict[str, Any]:
        def has_layout(d: str) -> bool:
            return bool(source.subdir(d, "Original") and source.subdir(d, *_CVC_TRUTH))

        candidates = source.find_dirs(has_layout)
        if not candidates:
            raise _not_found(
                "cvc-clinicdb", source, "CVC-ClinicDB/Original and 'Ground Truth' folders",
                "the official CVC-ClinicDB archive (CVC-ClinicDB/Original/<n>.tif and CVC-ClinicDB/Ground Truth/"
                "<n>.tif, or PNG/Original and PNG/Ground Truth)",
            )  # fmt: skip

        def is_tiff_copy(d: str) -> bool:
            return any(_suffix(f) in (".tif", ".tiff") for f in source.files_in(source.subdir(d, "Original") or ""))

        root = _one_root("cvc-clinicdb", source, candidates, is_tiff_copy, "CVC-ClinicDB")
        if len(candidates) > 1:
            writer.warn(f"several CVC-ClinicDB copies in {source.path.name}; used {root or '.'}, ignored "
                        f"{_listed([c or '.' for c in candidates if c != root])}")  # fmt: skip
        images = _image_files(source, source.subdir(root, "Original") or "", writer)
        masks = _image_files(
source, source.subdir(root, *_CVC_TRUTH) or "", writer)
        for key, image, mask in _pair_by_key(source, writer, images, masks):
            try:
                group = cvc_clinicdb_sequence(int(key)) if key.isdigit() else None
            except ValueError:
                group = None
            if group is None:
                writer.skip(image, "name is not an official frame number 1..612")
                continue
            frame = str(int(key))
            if writer.add(frame, image, [mask], DEFAULT_MASK_THRESHOLD):
                writer.groups[frame] = group
        _copy_notes(source, writer, root, ["README.txt", "readme.txt"])
        if root:
            _copy_notes(source, writer, _parent(root), ["README.txt"])
        return {
            "layout_root": root or ".",
            "images": "TIFF frames converted losslessly to PNG (3-sample MinIsBlack TIFFs decoded with tifffile); "
            "PNG copied byte for byte",
            "masks": "binarised with grey > 127 (a few masks hold faint grey annotation artefacts)",
            "mask_threshold": DEFAULT_MASK_THRESHOLD,
            "groups": "video sequence seq01..seq29 (official README frame ranges); split by group",
        }

    return _run_import("cvc-clinicdb", src, out, overwrite, body)


_BUSI_CLASSES = ("benign", "malignant", "normal")
_BUSI_NAME = re.compile(r"^(?P<name>.+?)\s*\((?P<k>\d+)\)(?P<mask>_mask(?:_(?P<m>\d+))?)?$", re.IGNORECASE)
_BUSI_MASK_FALLBACK = re.compile(r"^(?P<base>.+?)_mask(?:_(?P<m>\d+))?$", re.IGNORECASE)


def _sanitise(text: str) -> str:
    return re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip())).strip("_") or "item"


def import_busi(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    include_normal: bool = False,
) -> ImportReport:
    """Import BUSI (``Dataset_BUSI_with_GT``) from its zip or folder.

    Layout: ``Dataset_BUSI_with_GT/{benign,malignant,normal}/<class> (k).png`` with one or more masks
    ``<class> (k)_mask.png``, ``<class> (k)_mask_1.png`` …; the masks of one image (multifocal lesions) are merged
    with a logical OR (``grey > 127`` each). Stems are ``<class>_<k:03d>`` (e.g. ``benign (1).png`` ->
    ``benign_001``); ``classes.csv`` records the class of every stem. Images (PNG) are copied byte for byte.

    The ``normal`` class has no lesion (empty masks). By default it is EXCLUDED and counted in ``dataset.yaml``
    (``excluded.normal``): lesion-segmentation benchmarks use benign + malignant (647 images), and an empty ground
    truth changes the meaning of per-image Dice. ``include_normal=True`` imports them into the same folder, with
    empty masks and class ``normal`` in ``classes.csv``, so they can be filtered later. (A separate sibling output
    was not chosen: one import, one atomic folder.)

    Known quirks (Pawlowska et al. 2023): duplicated images, and a few lesions present in both the benign and the
    malignant folder: use a near-duplicate-aware split (:func:`lgmsnet.data.make_splits`).

    Args:
        src: the archive or a folder holding ``Dataset_BUSI_with_GT/`` (or the class folders directly).
        out: output folder.
        overwrite: replace a non-empty ``out``.
        include_normal: import the ``normal`` class too.

    Returns:
        The import report.

    Raises:
        DatasetError: layout not recognised, undecodable file, non-empty output, no pair.
    """

    def body(source: _Source, writer: _Writer) -> dict[str, Any]:
        candidates = source.find_dirs(lambda d: bool(source.subdir(d, "benign") or source.subdir(d, "malignant")))
        if not candidates:
            raise _not_found(
                "busi", source, "Dataset_BUSI_with_GT/benign or malignant folder",
                "the BUSI archive (Dataset_BUSI_with_GT/{benign,malignant,normal}/<class> (k).png with "
                "<class> (k)_mask.png)",
            )  # fmt: skip
        root = _one_root("busi", source, candidates, lambda d: "busi" in _base(d).lower(), "Dataset_BUSI_with_GT")
        counts: dict[str, int] = {}
        for cls in _BUSI_CLASSES:
            folder = source.subdir(root, cls)
            if folder is None:
                writer.warn(f"no {cls}/ folder in {root or source.path.name}; that class is not imported")
                continue
            images: dict[str, tuple[str, str]] = {}  # key -> (stem, path)
            masks: dict[str, list[tuple[int, str]]] = {}
            for rel in source.files_in(folder):
                name = _stem(_base(rel))
                if _suffix(rel) not in IMAGE_EXTENSIONS:
                    writer.skip(rel, "not an image file")
                    continue
                match = _BUSI_NAME.match(name)
                if match:
                    key = f"{match['name'].lower()}|{int(match['k'])}"
                    stem = f"{_sanitise(match['name']).lower()}_{int(match['k']):03d}"
                    is_mask, order = bool(match["mask"]), int(match["m"] or 0)
                else:
                    fallback = _BUSI_MASK_FALLBACK.match(name)
                    is_mask = fallback is not None
                    base = fallback["base"] if fallback else name
                    key, stem = base.lower(), _sanitise(base)
                    order = int(fallback["m"] or 0) if fallback else 0
                if is_mask:
                    masks.setdefault(key, []).append((order, rel))
                elif key in images:
                    writer.skip(rel, f"same image number as {_base(images[key][1])}")
                else:
                    images[key] = (stem, rel)
            for key in sorted(masks.keys() - images.keys()):
                for _, rel in masks[key]:
                    writer.skip(rel, "mask without an image of the same name")
            if cls == "normal" and not include_normal:
                writer.exclude(
                    "normal",
                    "class 'normal' (no lesion, empty masks) excluded; pass include_normal=True (--include-normal) "
                    "to import it",
                    len(images),
                )
                continue
            for key, (stem, rel) in sorted(images.items(), key=lambda kv: kv[1][0]):
                mask_rels = [r for _, r in sorted(masks.get(key, []))]
                if not mask_rels:
                    writer.skip(rel, "no mask '<name> (k)_mask.png'")
                    continue
                if writer.add(stem, rel, mask_rels, DEFAULT_MASK_THRESHOLD):
                    writer.table("classes.csv", "class", stem, cls)
                    counts[cls] = counts.get(cls, 0) + 1
        return {
            "layout_root": root or ".",
            "images": "PNG copied byte for byte",
            "masks": "binarised with grey > 127; several masks of one image (multifocal) merged with logical OR",
            "mask_threshold": DEFAULT_MASK_THRESHOLD,
            "n_multi_mask_merged": writer.n_multi_mask,
            "classes": counts,
            "normal_class": "included (empty masks)" if include_normal else "excluded (counted under excluded)",
            "known_issues": (
                "duplicated images and a few lesions present in both benign and malignant (Pawlowska et al., "
                "Data in Brief 2023): use a near-duplicate-aware split"
            ),
        }

    return _run_import("busi", src, out, overwrite, body)


_ISIC_INPUT = re.compile(r"^ISIC2018_Task1-2_(?P<split>Training|Validation|Test)_Input$", re.IGNORECASE)
_ISIC_TRUTH = re.compile(r"^ISIC2018_Task1_(?P<split>Training|Validation|Test)_GroundTruth$", re.IGNORECASE)
_ISIC_IGNORED = frozenset({"attribution.txt", "license.txt"})


def import_isic2018(
    src: str | os.PathLike[str], out: str | os.PathLike[str], *, overwrite: bool = False
) -> ImportReport:
    """Import ISIC 2018 Task 1 (lesion boundary segmentation) from its zips or extracted folders.

    Layout: ``ISIC2018_Task1-2_<Split>_Input/ISIC_XXXXXXX.jpg`` with
    ``ISIC2018_Task1_<Split>_GroundTruth/ISIC_XXXXXXX_segmentation.png`` for ``<Split>`` in Training, Validation,
    Test. ``src`` may be one zip holding both folders, or a folder holding the downloaded zips and/or extracted
    folders. ``ATTRIBUTION.txt`` and ``LICENSE.txt`` are copied to ``source_notes/``; ``*_superpixels.png`` are
    ignored. ``official_splits.csv`` records the challenge split of each stem. Images (JPEG) are copied byte for
    byte; masks ``grey > 127``.

    Args:
        src: archive or folder.
        out: output folder.
        overwrite: replace a non-empty ``out``.

    Returns:
        The import report.

    Raises:
        DatasetError: layout not recognised (e.g. inputs without ground truth), undecodable file, non-empty output.
    """

    def body(source: _Source, writer: _Writer) -> dict[str, Any]:
        inputs: dict[str, list[str]] = {}
        truths: dict[str, list[str]] = {}
        for d in source.dirs:
            for pattern, found in ((_ISIC_INPUT, inputs), (_ISIC_TRUTH, truths)):
                match = pattern.match(_base(d)) if d else None
                if match:
                    found.setdefault(match["split"].capitalize(), []).append(d)
        if not inputs and not truths:
            raise _not_found(
                "isic2018", source, "ISIC2018_Task1-2_Training_Input folder",
                "the ISIC 2018 Task 1 downloads (ISIC2018_Task1-2_Training_Input.zip and "
                "ISIC2018_Task1_Training_GroundTruth.zip, or their folders) side by side in one folder",
            )  # fmt: skip
        unmatched = sorted(inputs.keys() ^ truths.keys())
        for split in unmatched:
            have, lack = (
                (f"ISIC2018_Task1-2_{split}_Input", f"ISIC2018_Task1_{split}_GroundTruth")
                if split in inputs
                else (f"ISIC2018_Task1_{split}_GroundTruth", f"ISIC2018_Task1-2_{split}_Input")
            )
            writer.warn(f"{source.path.name} has {have} but no {lack}; the {split} split is not imported")
        splits = sorted(inputs.keys() & truths.keys())
        if not splits:
            found = sorted({d for dirs in (*inputs.values(), *truths.values()) for d in dirs})
            raise DatasetError(
                f"{source.path} holds ISIC 2018 folders ({_listed(found)}) "
                "but no split with both the Input and the GroundTruth folder; put both downloads (e.g. "
                "ISIC2018_Task1-2_Training_Input.zip and ISIC2018_Task1_Training_GroundTruth.zip) in one folder and "
                "pass that folder."
            )
        counts: dict[str, int] = {}
        for split in splits:
            for kind, dirs in (("Input", inputs[split]), ("GroundTruth", truths[split])):
                if len(dirs) > 1:
                    raise DatasetError(
                        f"{source.path} holds {len(dirs)} {split} {kind} folders ({_listed(dirs)}); keep one copy."
                    )
            in_dir, gt_dir = inputs[split][0], truths[split][0]

            def ignored(name: str) -> bool:
                return name.lower() in _ISIC_IGNORED or _stem(name).lower().endswith("_superpixels")

            images = _image_files(source, in_dir, writer, ignored)
            raw_masks = _image_files(source, gt_dir, writer, ignored)
            masks: dict[str, str] = {}
            for stem, rel in raw_masks.items():
                if stem.lower().endswith("_segmentation"):
                    masks[stem[: -len("_segmentation")]] = rel
                else:
                    writer.skip(rel, "ground-truth name does not end with _segmentation")
            for stem, image, mask in _pair_by_key(source, writer, images, masks):
                if writer.add(stem, image, [mask], DEFAULT_MASK_THRESHOLD):
                    writer.table("official_splits.csv", "split", stem, split)
                    counts[split] = counts.get(split, 0) + 1
            for folder in (in_dir, gt_dir):
                _copy_notes(source, writer, folder, ["LICENSE.txt", "ATTRIBUTION.txt"], prefix=f"{_base(folder)}_")
        return {
            "images": "JPEG copied byte for byte",
            "masks": _PNG_MASK_RULE,
            "mask_threshold": DEFAULT_MASK_THRESHOLD,
            "official_splits": counts,
        }

    return _run_import("isic2018", src, out, overwrite, body)


_PH2_ID = re.compile(r"^IMD\d+$", re.IGNORECASE)


def import_ph2(
    src: str | os.PathLike[str], out: str | os.PathLike[str], *, overwrite: bool = False
) -> ImportReport:
    """Import the PH2 database from its extracted folder (or a zip of it).

    Layout: ``PH2 Dataset images/IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp`` with
    ``IMDxxx/IMDxxx_lesion/IMDxxx_lesion.bmp``; ``IMDxxx_roi`` folders are ignored. The official download is a
    ``.rar``: extract it first. BMP images are converted losslessly to PNG; masks ``grey > 127``.
    ``PH2_dataset.txt`` (diagnoses) is copied to ``source_notes/``.

    Args:
        src: the extracted folder (holding ``PH2 Dataset images/``) or a zip of it.
        out: output folder.
        overwrite: replace a non-empty ``out``.

    Returns:
        The import report.

    Raises:
        DatasetError: layout not recognised, undecodable file, non-empty output, no pair.
    """

    def body(source: _Source, writer: _Writer) -> dict[str, Any]:
        def has_cases(d: str) -> bool:
            return any(_PH2_ID.match(sub) for sub in source.dirs.get(d, ()))

        candidates = source.find_dirs(has_cases)
        if not candidates:
            raise _not_found(
                "ph2", source, "'PH2 Dataset images/IMDxxx' folder",
                "the extracted PH2Dataset.rar (PH2 Dataset images/IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp and "
                "IMDxxx_lesion/IMDxxx_lesion.bmp)",
            )  # fmt: skip
        root = _one_root("ph2", source, candidates, lambda d: _base(d).lower() == "ph2 dataset images", "PH2")
        for case in sorted(sub for sub in source.dirs[root] if _PH2_ID.match(sub)):
            case_dir = _join(root, case)
            image_dir = source.subdir(case_dir, f"{case}_Dermoscopic_Image")
            lesion_dir = source.subdir(case_dir, f"{case}_lesion")
            image_files = source.files_in(image_dir) if image_dir else []
            lesion_files = source.files_in(lesion_dir) if lesion_dir else []
            image = next((r for r in image_files if _stem(_base(r)).lower() == case.lower()), None)
            lesion = next((r for r in lesion_files if _stem(_base(r)).lower() == f"{case}_lesion".lower()), None)
            if image is None or _suffix(image) not in IMAGE_EXTENSIONS:
                writer.skip(case_dir, f"no {case}_Dermoscopic_Image/{case}.bmp")
                continue
            if lesion is None or _suffix(lesion) not in IMAGE_EXTENSIONS:
                writer.skip(image, f"no {case}_lesion/{case}_lesion.bmp")
                continue
            writer.add(case.upper(), image, [lesion], DEFAULT_MASK_THRESHOLD)
        for folder in {root, _parent(root)}:
            _copy_notes(source, writer, folder, ["PH2_dataset.txt", "PH2_dataset.xlsx", "readme.txt"])
        return {
            "layout_root": root or ".",
            "images": "BMP converted losslessly to PNG",
            "masks": "binarised with grey > 127 (source lesion masks are 0/255 BMP)",
            "mask_threshold": DEFAULT_MASK_THRESHOLD,
        }

    return _run_import("ph2", src, out, overwrite, body)


_BUSBRA_IMAGE = re.compile(r"^bus_(?P<key>(?P<num>\d+)-(?P<view>[a-z]+))$", re.IGNORECASE)
_BUSBRA_MASK = re.compile(r"^mask_(?P<key>(?P<num>\d+)-(?P<view>[a-z]+))$", re.IGNORECASE)


def _case_group(value: str) -> str:
    value = value.strip()
    return f"case_{int(value):04d}" if value.isdigit() else f"case_{_sanitise(value)}"


def import_bus_bra(
    src: str | os.PathLike[str], out: str | os.PathLike[str], *, overwrite: bool = False
) -> ImportReport:
    """Import BUS-BRA from its zip or folder.

    Layout: ``BUSBRA/Images/bus_XXXX-{l,r,s}.png``, ``BUSBRA/Masks/mask_XXXX-{l,r,s}.png`` and
    ``BUSBRA/bus_data.csv`` (columns ``ID`` e.g. ``bus_0001-l`` and ``Case``, the patient). Stems are the image
    names (``bus_0001-l``); ``groups.csv`` groups them by patient (``case_<Case>``, zero-padded to 4 digits). When
    the csv (or an image's row) is missing, the patient is derived from the 4-digit number and a warning is
    recorded. ``classes.csv`` holds the ``Pathology`` column when present. Images (PNG) are copied byte for byte;
    masks ``grey > 127``.

    Args:
        src: the archive or a folder holding ``BUSBRA/``.
        out: output folder.
        overwrite: replace a non-empty ``out``.

    Returns:
        The import report.

    Raises:
        DatasetError: layout not recognised, ``bus_data.csv`` without ``ID``/``Case`` columns, undecodable file,
            non-empty output, no pair.
    """

    def body(source: _Source, writer: _Writer) -> dict[str, Any]:
        def is_busbra(d: str) -> bool:  # Images/ holding bus_XXXX-<view> files, not any images/ + masks/
            images_dir = source.subdir(d, "Images")
            return bool(images_dir and source.subdir(d, "Masks")) and any(
                _BUSBRA_IMAGE.match(_stem(_base(r))) for r in source.files_in(images_dir or "")
            )

        candidates = source.find_dirs(is_busbra)
        if not candidates:
            raise _not_found(
                "bus-bra", source, "BUSBRA/Images and BUSBRA/Masks folders",
                "the BUS-BRA archive (BUSBRA/Images/bus_XXXX-l.png, BUSBRA/Masks/mask_XXXX-l.png, BUSBRA/bus_data.csv)",
            )  # fmt: skip
        root = _one_root("bus-bra", source, candidates, lambda d: _base(d).lower() == "busbra", "BUSBRA")
        csv_rel = next((r for r in source.files_in(root) if _base(r).lower() == "bus_data.csv"), None)
        patients: dict[str, str] = {}
        pathology: dict[str, str] = {}
        if csv_rel is None:
            writer.warn(
                f"no bus_data.csv next to {root or '.'}/Images in {source.path.name}: patient groups derived from the "
                "4-digit number of each file name (bus_0001-l -> case_0001); add the csv for the official Case ids"
            )
        else:
            reader = csv.DictReader(io.StringIO(source.read_text(csv_rel)))
            columns = [c.strip() for c in reader.fieldnames or []]
            if "ID" not in columns or "Case" not in columns:
                raise DatasetError(
                    f"{source.describe(csv_rel)} has columns {columns}; BUS-BRA's bus_data.csv needs 'ID' (e.g. "
                    "bus_0001-l) and 'Case' (patient id). Use the csv shipped with the dataset or delete it to derive "
                    "patients from the file names."
                )
            for raw in reader:
                row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if isinstance(v, str | None)}
                if row.get("ID") and row.get("Case"):
                    patients[row["ID"].lower()] = _case_group(row["Case"])
                    if row.get("Pathology"):
                        pathology[row["ID"].lower()] = row["Pathology"].lower()
            _copy_notes(source, writer, root, ["bus_data.csv"])
        images: dict[str, tuple[str, str, str]] = {}  # key -> (stem, path, number)
        for stem, rel in _image_files(source, source.subdir(root, "Images") or "", writer).items():
            match = _BUSBRA_IMAGE.match(stem)
            if match is None:
                writer.skip(rel, "name is not bus_XXXX-<view>.png")
            else:
                images[match["key"].lower()] = (stem, rel, match["num"])
        masks: dict[str, str] = {}
        for stem, rel in _image_files(source, source.subdir(root, "Masks") or "", writer).items():
            match = _BUSBRA_MASK.match(stem)
            if match is None:
                writer.skip(rel, "name is not mask_XXXX-<view>.png")
            else:
                masks[match["key"].lower()] = rel
        derived: list[str] = []
        for key, _, mask in _pair_by_key(source, writer, {k: v[1] for k, v in images.items()}, masks):
            stem, image, number = images[key]
            if not writer.add(stem, image, [mask], DEFAULT_MASK_THRESHOLD):
                continue
            group = patients.get(stem.lower())
            if group is None:
                group = _case_group(number)
                derived.append(stem)
            writer.groups[stem] = group
            if stem.lower() in pathology:
                writer.table("classes.csv", "class", stem, pathology[stem.lower()])
        if derived and csv_rel is not None:
            writer.warn(
                f"{len(derived)} image(s) have no row in bus_data.csv ({_listed(derived)}); their patient was derived "
                "from the file number"
            )
        return {
            "layout_root": root or ".",
            "images": "PNG copied byte for byte",
            "masks": _PNG_MASK_RULE,
            "mask_threshold": DEFAULT_MASK_THRESHOLD,
            "groups": "patient (bus_data.csv 'Case'; derived from the file number where missing); split by group",
            "groups_source": "bus_data.csv" if csv_rel is not None and not derived else (
                "file number (bus_data.csv missing)" if csv_rel is None else "bus_data.csv, file number for some"
            ),
        }

    return _run_import("bus-bra", src, out, overwrite, body)


def import_folder(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    mask_threshold: int = DEFAULT_MASK_THRESHOLD,
) -> ImportReport:
    """Import a generic folder dataset (``images/`` + ``masks/`` with matching stems, any supported extension).

    Unpaired files are skipped and counted (rather than failing as :func:`lgmsnet.data.scan_pairs` does); the
    result is validated with :func:`lgmsnet.data.scan_pairs`. JPEG/PNG images are copied byte for byte, other
    formats converted losslessly to PNG; masks become {0, 255} PNG with ``grey > mask_threshold``. A source
    ``groups.csv`` is kept (for the imported stems); a source ``dataset.yaml`` is embedded as ``source_info``
    (and its ``synthetic`` flag is kept).

    Args:
        src: folder (or zip) holding ``images/`` and ``masks/``.
        out: output folder.
        overwrite: replace a non-empty ``out``.
        mask_threshold: foreground is ``grey > mask_threshold`` (127 for 0/255 masks, 0 for 0/1 label masks).

    Returns:
        The import report.

    Raises:
        DatasetError: no ``images/`` + ``masks/``, undecodable file, invalid groups.csv, non-empty output, no pair.
        ValueError: ``mask_threshold`` not an int in 0..254.
    """
    if isinstance(mask_threshold, bool) or not isinstance(mask_threshold, int) or not 0 <= mask_threshold <= 254:
        raise ValueError(
            f"mask_threshold must be an int in 0..254 (foreground is mask > threshold), got {mask_threshold!r}; "
            f"use {DEFAULT_MASK_THRESHOLD} for 0/255 masks, 0 for 0/1 label masks."
        )

    def body(source: _Source, writer: _Writer) -> dict[str, Any]:
        candidates = source.find_dirs(lambda d: bool(source.subdir(d, "images") and source.subdir(d, "masks")))
        if not candidates:
            raise _not_found(
                "folder", source, "images/ and masks/ folders",
                "a folder dataset: DIR/images/<stem>.<ext> and DIR/masks/<stem>.<ext>",
            )  # fmt: skip
        root = _one_root("folder", source, candidates, lambda d: d == "", "images/ + masks/")
        images = _image_files(source, source.subdir(root, "images") or "", writer)
        masks = _image_files(source, source.subdir(root, "masks") or "", writer)
        for stem, image, mask in _pair_by_key(source, writer, images, masks):
            writer.add(stem, image, [mask], mask_threshold)
        details: dict[str, Any] = {
            "layout_root": root or ".",
            "masks": f"binarised with grey > {mask_threshold}",
            "mask_threshold": mask_threshold,
        }
        extra = {_base(r).lower(): r for r in source.files_in(root)}
        meta_dir = writer.scratch / "meta"
        for name in ("groups.csv", "dataset.yaml"):
            if name in extra:
                meta_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source.local(extra[name], writer.scratch / "x"), meta_dir / name)
        if (meta_dir / "groups.csv").is_file():
            writer.groups.update(load_groups(meta_dir))
            details["groups"] = "from the source groups.csv"
        if (meta_dir / "dataset.yaml").is_file():
            source_info = load_dataset_info(meta_dir)
            details["source_info"] = source_info
            details["synthetic"] = bool(source_info.get("synthetic", False))
            if source_info.get("name"):
                details["name"] = str(source_info["name"])
        for rel in source.files_in(root):
            if _suffix(rel) in (".md", ".txt") or _base(rel).lower() in ("license", "licence"):
                writer.copy_note(rel)
        return details

    return _run_import("folder", src, out, overwrite, body)


ImporterFn = Callable[..., ImportReport]

#: Importer of each format, by the name used on the command line.
IMPORTERS: dict[str, ImporterFn] = {
    "kvasir-seg": import_kvasir_seg,
    "cvc-clinicdb": import_cvc_clinicdb,
    "busi": import_busi,
    "isic2018": import_isic2018,
    "ph2": import_ph2,
    "bus-bra": import_bus_bra,
    "folder": import_folder,
}


def import_dataset(
    fmt: str,
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    overwrite: bool = False,
    *,
    include_normal: bool = False,
    mask_threshold: int | None = None,
) -> ImportReport:
    """Import a dataset of format ``fmt`` (a key of :data:`IMPORTERS`) from ``src`` into ``out``.

    Args:
        fmt: dataset format, e.g. ``"kvasir-seg"``.
        src: downloaded archive or folder.
        out: output folder dataset.
        overwrite: replace a non-empty ``out``.
        include_normal: BUSI only: import the ``normal`` class too.
        mask_threshold: ``folder`` only: foreground is ``grey > mask_threshold`` (default 127).

    Returns:
        The import report.

    Raises:
        ValueError: unknown format, or an option the format does not take.
        DatasetError: see the importer of the format.
    """
    if fmt not in IMPORTERS:
        raise ValueError(f"Unknown dataset format {fmt!r}; valid formats are {sorted(IMPORTERS)}.")
    importer = IMPORTERS[fmt]
    accepted = inspect.signature(importer).parameters
    options: dict[str, Any] = {}
    for name, value, default in (("include_normal", include_normal, False), ("mask_threshold", mask_threshold, None)):
        if value == default:
            continue
        if name not in accepted:
            takers = sorted(k for k, f in IMPORTERS.items() if name in inspect.signature(f).parameters)
            raise ValueError(f"Option {name} does not apply to format {fmt!r}; it applies to {takers}.")
        options[name] = value
    return importer(src, out, overwrite=overwrite, **options)
