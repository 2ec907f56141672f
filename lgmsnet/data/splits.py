"""Deterministic, leakage-aware train/val/test splits written as a JSON manifest.

Images that must stay together are grouped before splitting:

* **near-duplicates**: a 256-bit difference hash (dHash: grey image area-resized to 17x16, one bit per
  horizontally adjacent pixel pair) is computed for every image; images whose hashes differ in at most
  ``hash_threshold`` bits are joined (union-find, so the relation is transitive);
* **explicit groups** from ``DIR/groups.csv`` (video sequences, patients), joined with the above.

Whole groups are then assigned to splits: groups are ordered by their smallest stem, shuffled with
``random.Random(seed)`` (stable across Python versions) and laid end to end; a group goes to the split whose
share of the cumulative count contains the group's midpoint. Ratios are therefore met up to one group.

Manifest (JSON)::

    {"format_version": 1, "seed": 0, "ratios": [0.7, 0.1, 0.2], "fingerprint": "<dataset_fingerprint>",
     "hash_threshold": 10, "train": [stems], "val": [...], "test": [...],
     "groups": {"<group id>": [stems of every group with two or more members]},
     "hashes": {"<stem>": "<64 hex dHash>"}}

The hashes are a cache: :func:`make_splits` reuses them from a previous manifest of the same fingerprint.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lgmsnet.data._fs import atomic_write_text
from lgmsnet.data.folder import DatasetError, _read_array, dataset_fingerprint, load_groups, scan_pairs

__all__ = [
    "DEFAULT_HASH_THRESHOLD",
    "DEFAULT_RATIOS",
    "SPLIT_NAMES",
    "SplitManifest",
    "hamming_distance",
    "image_dhash",
    "load_manifest",
    "make_splits",
    "near_duplicate_groups",
    "write_manifest",
]

logger = logging.getLogger(__name__)

DEFAULT_RATIOS: tuple[float, float, float] = (0.7, 0.1, 0.2)
DEFAULT_HASH_THRESHOLD = 10
SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")
MANIFEST_FORMAT_VERSION = 1
HASH_SIZE = 16
_HASH_BITS = HASH_SIZE * HASH_SIZE
_BLOCK = 1024
_EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"})


def image_dhash(path: str | os.PathLike[str]) -> str:
    """256-bit difference hash of an image, as 64 hex characters.

    JPEGs are decoded at reduced resolution (``Image.draft("L", (64, 64))``), which is several times faster
    and does not change the hash materially.

    Args:
        path: image file.

    Returns:
        Hex string; bit ``i`` is set when pixel ``(r, c)`` is brighter than ``(r, c + 1)`` on the 17x16 grey
        thumbnail.

    Raises:
        DatasetError: the file cannot be decoded.
    """
    path = Path(path)
    grey: Image.Image | None = None
    try:
        with Image.open(path) as image:
            if image.mode in _EIGHT_BIT_MODES:
                if image.format == "JPEG":
                    image.draft("L", (4 * HASH_SIZE, 4 * HASH_SIZE))
                grey = image.convert("L")
    except Exception:  # the full reader below raises a DatasetError naming the file
        grey = None
    if grey is None:  # 16-bit, float or Pillow-unreadable (e.g. 3-sample MinIsBlack TIFF)
        grey = Image.fromarray(_read_array(path)).convert("L")
    grey = grey.resize((HASH_SIZE + 1, HASH_SIZE), Image.Resampling.BOX)
    pixels = np.asarray(grey, dtype=np.int16)
    bits = (pixels[:, :-1] > pixels[:, 1:]).ravel()
    return np.packbits(bits).tobytes().hex()


def hamming_distance(hash_a: str, hash_b: str) -> int:
    """Number of differing bits between two hex hashes of equal length.

    Raises:
        ValueError: the hashes have different lengths.
    """
    if len(hash_a) != len(hash_b):
        raise ValueError(
            f"Hashes differ in length ({len(hash_a)} vs {len(hash_b)} hex digits); compare hashes of the same method."
        )
    return (int(hash_a, 16) ^ int(hash_b, 16)).bit_count()


def _hash_bits(hashes: Sequence[str]) -> np.ndarray:
    raw = np.frombuffer(b"".join(bytes.fromhex(h) for h in hashes), dtype=np.uint8).reshape(len(hashes), -1)
    return np.unpackbits(raw, axis=1).astype(np.float32)


class _UnionFind:
    def __init__(self, items: Sequence[str]) -> None:
        self.parent = {item: item for item in items}

    def find(self, item: str) -> str:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = sorted((ra, rb))
            self.parent[hi] = lo  # the smallest stem is always the root: deterministic

    def components(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for item in self.parent:
            out.setdefault(self.find(item), []).append(item)
        return {root: sorted(members) for root, members in out.items()}


def _near_duplicate_edges(stems: Sequence[str], hashes: Mapping[str, str], threshold: int) -> list[tuple[str, str]]:
    if threshold < 0 or len(stems) < 2:
        return []
    bits = _hash_bits([hashes[s] for s in stems])
    inverse = 1.0 - bits
    edges: list[tuple[str, str]] = []
    for start in range(0, len(stems), _BLOCK):
        block, block_inv = bits[start : start + _BLOCK], inverse[start : start + _BLOCK]
        distance = block @ inverse.T + block_inv @ bits.T  # Hamming distance as a matrix product
        rows, cols = np.nonzero(distance <= threshold + 0.5)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            if start + r < c:
                edges.append((stems[start + r], stems[c]))
    return edges


def near_duplicate_groups(hashes: Mapping[str, str], threshold: int = DEFAULT_HASH_THRESHOLD) -> list[list[str]]:
    """Connected components of images whose hashes differ in at most ``threshold`` bits.

    Args:
        hashes: stem -> hex hash from :func:`image_dhash`.
        threshold: maximum Hamming distance; negative disables grouping.

    Returns:
        Sorted lists of stems, only components with two or more members, ordered by their first stem.
    """
    stems = sorted(hashes)
    finder = _UnionFind(stems)
    for a, b in _near_duplicate_edges(stems, hashes, threshold):
        finder.union(a, b)
    return sorted(members for members in finder.components().values() if len(members) > 1)


@dataclass
class SplitManifest:
    """A train/val/test split of one dataset version.

    Attributes:
        seed: seed of the group shuffle.
        ratios: target (train, val, test) fractions.
        fingerprint: :func:`lgmsnet.data.dataset_fingerprint` of the dataset that was split.
        hash_threshold: near-duplicate Hamming threshold used (negative: disabled).
        train: stems of the training split, sorted.
        val: stems of the validation split, sorted.
        test: stems of the test split, sorted.
        groups: group id -> stems, for every group with two or more members.
        hashes: stem -> dHash (hex); a cache for later runs.
        format_version: manifest schema version.
    """

    seed: int
    ratios: tuple[float, float, float]
    fingerprint: str
    hash_threshold: int
    train: list[str]
    val: list[str]
    test: list[str]
    groups: dict[str, list[str]] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    format_version: int = MANIFEST_FORMAT_VERSION

    def split(self, name: str) -> list[str]:
        """Stems of one split (``"train"``, ``"val"`` or ``"test"``).

        Raises:
            ValueError: unknown split name.
        """
        if name not in SPLIT_NAMES:
            raise ValueError(f"Unknown split {name!r}; valid splits are {list(SPLIT_NAMES)}.")
        return list(getattr(self, name))

    def split_of(self, stem: str) -> str:
        """Name of the split holding ``stem``.

        Raises:
            KeyError: the stem is in no split.
        """
        for name in SPLIT_NAMES:
            if stem in getattr(self, name):
                return name
        raise KeyError(f"Stem {stem!r} is in no split of this manifest (fingerprint {self.fingerprint[:12]}).")

    def group_violations(self) -> list[str]:
        """Groups whose members are in more than one split (empty for a valid manifest)."""
        where = {stem: name for name in SPLIT_NAMES for stem in getattr(self, name)}
        problems = []
        for group, members in self.groups.items():
            splits = sorted({where.get(m, "<missing>") for m in members})
            if len(splits) > 1:
                problems.append(f"group {group!r} spans {splits}")
        return problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (the manifest file's content)."""
        return {
            "format_version": self.format_version,
            "seed": self.seed,
            "ratios": list(self.ratios),
            "fingerprint": self.fingerprint,
            "hash_threshold": self.hash_threshold,
            "train": list(self.train),
            "val": list(self.val),
            "test": list(self.test),
            "groups": {k: list(v) for k, v in self.groups.items()},
            "hashes": dict(self.hashes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SplitManifest:
        """Build from :meth:`to_dict` output.

        Raises:
            DatasetError: missing keys, unsupported version, or a stem in two splits.
        """
        required = ("seed", "ratios", "fingerprint", "train", "val", "test")
        missing = [k for k in required if k not in data]
        if missing:
            raise DatasetError(
                f"Split manifest lacks key(s) {missing}; required are {list(required)}. Regenerate it with make_splits."
            )
        version = int(data.get("format_version", MANIFEST_FORMAT_VERSION))
        if version != MANIFEST_FORMAT_VERSION:
            raise DatasetError(
                f"Split manifest format_version {version} is not supported (this lgmsnet reads "
                f"{MANIFEST_FORMAT_VERSION}); regenerate it with make_splits."
            )
        ratios = tuple(float(r) for r in data["ratios"])
        if len(ratios) != 3:
            raise DatasetError(f"Split manifest ratios {list(ratios)} must have 3 values (train, val, test).")
        manifest = cls(
            seed=int(data["seed"]),
            ratios=(ratios[0], ratios[1], ratios[2]),
            fingerprint=str(data["fingerprint"]),
            hash_threshold=int(data.get("hash_threshold", DEFAULT_HASH_THRESHOLD)),
            train=[str(s) for s in data["train"]],
            val=[str(s) for s in data["val"]],
            test=[str(s) for s in data["test"]],
            groups={str(k): [str(s) for s in v] for k, v in dict(data.get("groups", {})).items()},
            hashes={str(k): str(v) for k, v in dict(data.get("hashes", {})).items()},
            format_version=version,
        )
        seen: dict[str, str] = {}
        duplicated = []
        for name in SPLIT_NAMES:
            for stem in getattr(manifest, name):
                if stem in seen:
                    duplicated.append(f"{stem} ({seen[stem]}, {name})")
                seen[stem] = name
        if duplicated:
            raise DatasetError(
                f"Split manifest puts {len(duplicated)} stem(s) in two splits: {', '.join(duplicated[:10])}; "
                "it was edited by hand or corrupted, regenerate it with make_splits."
            )
        return manifest


def _check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(r) for r in ratios)
    if len(values) != 3 or any(not np.isfinite(r) or r < 0 for r in values) or abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(
            f"ratios must be three non-negative fractions (train, val, test) summing to 1, got {list(ratios)}; "
            f"e.g. {list(DEFAULT_RATIOS)}."
        )
    return values[0], values[1], values[2]


def _group_id(members: Sequence[str], explicit: Mapping[str, str]) -> str:
    labels = sorted({explicit[m] for m in members if m in explicit})
    return "+".join(labels) if labels else f"near-duplicate:{members[0]}"


def _assign(groups: list[list[str]], ratios: tuple[float, float, float], seed: int) -> dict[str, list[str]]:
    order = sorted(groups, key=lambda members: members[0])
    random.Random(seed).shuffle(order)
    total = sum(len(g) for g in order)
    bounds = (ratios[0] * total, (ratios[0] + ratios[1]) * total)
    out: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    position = 0
    for members in order:
        midpoint = position + len(members) / 2.0
        name = "train" if midpoint < bounds[0] else "val" if midpoint < bounds[1] else "test"
        out[name].extend(members)
        position += len(members)
    return {name: sorted(stems) for name, stems in out.items()}


def make_splits(
    data_dir: str | os.PathLike[str],
    seed: int = 0,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    hash_threshold: int = DEFAULT_HASH_THRESHOLD,
    *,
    previous: SplitManifest | None = None,
) -> SplitManifest:
    """Split a folder dataset into train/val/test, keeping near-duplicates and ``groups.csv`` groups together.

    Args:
        data_dir: dataset folder (see :func:`lgmsnet.data.scan_pairs`).
        seed: seed of the group shuffle; the same seed and data give the same manifest.
        ratios: target (train, val, test) fractions, non-negative, summing to 1 (a ratio may be 0).
        hash_threshold: near-duplicate Hamming threshold on 256-bit dHashes; negative disables hashing.
        previous: a manifest whose hashes are reused when its fingerprint equals this dataset's.

    Returns:
        The manifest (not written; see :func:`write_manifest`).

    Raises:
        DatasetError: invalid dataset folder or unreadable image, or ``groups.csv`` naming stems that are not
            in the dataset.
        ValueError: invalid ratios.
    """
    split_ratios = _check_ratios(ratios)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}.")
    started = time.perf_counter()
    root = Path(data_dir)
    pairs = scan_pairs(root)
    stems = [p.stem for p in pairs]
    fingerprint = dataset_fingerprint(root)
    explicit = load_groups(root)
    unknown = sorted(explicit.keys() - set(stems))
    if unknown:
        raise DatasetError(
            f"{root / 'groups.csv'} names {len(unknown)} stem(s) that are not in the dataset: "
            f"{', '.join(unknown[:10])}; fix the stems or regenerate groups.csv for this dataset."
        )

    hashes: dict[str, str] = {}
    if hash_threshold >= 0:
        cached = previous.hashes if previous is not None and previous.fingerprint == fingerprint else {}
        for pair in pairs:
            hashes[pair.stem] = cached.get(pair.stem) or image_dhash(pair.image_path)
        logger.info("dHash of %d images (%d from cache)", len(pairs), sum(1 for s in stems if s in cached))

    finder = _UnionFind(stems)
    n_near = 0
    for a, b in _near_duplicate_edges(stems, hashes, hash_threshold):
        finder.union(a, b)
        n_near += 1
    by_label: dict[str, str] = {}
    for stem, label in sorted(explicit.items()):
        if label in by_label:
            finder.union(by_label[label], stem)
        else:
            by_label[label] = stem
    components = sorted(finder.components().values())
    groups = {_group_id(m, explicit): m for m in components if len(m) > 1}
    assignment = _assign(components, split_ratios, seed)
    manifest = SplitManifest(
        seed=seed,
        ratios=split_ratios,
        fingerprint=fingerprint,
        hash_threshold=hash_threshold,
        train=assignment["train"],
        val=assignment["val"],
        test=assignment["test"],
        groups=groups,
        hashes=hashes,
    )
    for name, ratio in zip(SPLIT_NAMES, split_ratios, strict=True):
        if ratio > 0 and not getattr(manifest, name):
            logger.warning(
                "Split %r is empty although its ratio is %g: %d images in %d groups are too few for ratios %s",
                name,
                ratio,
                len(stems),
                len(components),
                list(split_ratios),
            )
    logger.info(
        "Split %d images (%d near-duplicate pairs, %d multi-image groups) into train/val/test = %d/%d/%d in %.1f s",
        len(stems),
        n_near,
        len(groups),
        len(manifest.train),
        len(manifest.val),
        len(manifest.test),
        time.perf_counter() - started,
    )
    return manifest


def write_manifest(manifest: SplitManifest, path: str | os.PathLike[str]) -> Path:
    """Write a manifest as JSON atomically (temporary file in the same folder, then ``os.replace``).

    Args:
        manifest: the manifest.
        path: destination file; parent folders are created.

    Returns:
        The destination path.
    """
    text = json.dumps(manifest.to_dict(), indent=1) + "\n"
    return atomic_write_text(Path(path), text)


def load_manifest(path: str | os.PathLike[str]) -> SplitManifest:
    """Read a manifest written by :func:`write_manifest`.

    Raises:
        DatasetError: the file is missing, not JSON, or not a valid manifest.
    """
    source = Path(path)
    if not source.is_file():
        raise DatasetError(f"Split manifest {source} does not exist; create it with make_splits + write_manifest.")
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"Split manifest {source} is not valid JSON ({exc}); regenerate it.") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"Split manifest {source} holds a {type(data).__name__}; expected a JSON object.")
    try:
        return SplitManifest.from_dict(data)
    except DatasetError as exc:
        raise DatasetError(f"{source}: {exc}") from exc
