"""Evaluation, zero-shot transfer and batch prediction from a checkpoint.

Everything here starts from an lgmsnet checkpoint (:mod:`lgmsnet.checkpoint`), so it needs nothing else: the model
is rebuilt from the checkpoint, and the training image size is read from its ``config`` (``config.data.image_size``)
when present.

**Image size policy** (one of two, recorded in ``metrics.json``):

* ``"resize"`` ("resize in and out"): each image is resized to ``image_size × image_size`` for the network with
  the evaluation pipeline of training (``build_transforms("none", ...)``: bilinear resize, then ImageNet
  normalisation for RGB / mean-std 0.5 for grey, applied once); the logits are resized back (bilinear) to the
  image's **native** size and metrics are computed against the native-resolution mask. Used when ``image_size``
  is given, or when it is None and the checkpoint's config records the training size.
* ``"native"``: the image is normalised at its native size and run through ``model.predict`` (replicate-padded to a
  multiple of ``model.size_multiple``, logits cropped back). Used when ``image_size="native"``, or when it is None
  and the checkpoint has no config.

Images are read with the model's ``in_channels`` (grey images replicated to RGB for an RGB model, colour images
reduced to luminance for a grey model), so a channel mismatch between data and checkpoint is handled.

**Metrics** are those of :class:`lgmsnet.metrics.SegmentationMeter`: per-image values averaged over images (the
field's convention), with the empty-mask rule "0/0 counts as 1" (see :data:`EMPTY_MASK_CONVENTION`); HD95 is in
native pixels and excluded from its mean where exactly one mask is empty.

Outputs of :func:`evaluate` (``OUT/``)::

    metrics.json        summary, provenance, policy (written last, atomically: its presence marks a finished run)
    per_image.csv       one row per image: stem, height, width, every metric, tp, fp, fn, tn
    overlays/best_<rank>_<stem>.png, overlays/worst_<rank>_<stem>.png
                        [image with the ground-truth contour | prediction in translucent red + red contour and
                        the ground-truth contour in green], ranked by Dice

Nothing here prints; progress goes to ``logging.getLogger(__name__)``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import lgmsnet
from lgmsnet.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from lgmsnet.data import (
    DEFAULT_MASK_THRESHOLD,
    IMAGE_EXTENSIONS,
    SPLIT_NAMES,
    DatasetError,
    Pair,
    SplitManifest,
    build_transforms,
    dataset_fingerprint,
    load_dataset_info,
    load_manifest,
    normalize_image,
    read_image,
    read_mask,
    scan_pairs,
)
from lgmsnet.data._fs import atomic_write_text, swap_in_dir, temporary_sibling
from lgmsnet.metrics import METRIC_NAMES, SegmentationMeter, binarize

__all__ = [
    "EMPTY_MASK_CONVENTION",
    "EvalResult",
    "ImagePolicy",
    "evaluate",
    "predict",
    "resolve_image_policy",
    "summary_table",
    "zero_shot",
]

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
PER_IMAGE_FILE = "per_image.csv"
OVERLAY_DIR = "overlays"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
PREDICT_INFO_FILE = ".lgmsnet-predict.json"
REPORT_VERSION = 1

EMPTY_MASK_CONVENTION = (
    "Per-image metrics, averaged over images. A ratio whose denominator is 0 counts as 1: an empty ground truth "
    "with an empty prediction scores Dice = IoU = 1; an empty ground truth with any predicted foreground scores "
    "Dice = IoU = 0; a non-empty ground truth with an empty prediction scores Dice = IoU = 0. Empty ground truth "
    "is never replaced by an all-foreground mask. HD95 (pixels at native resolution) is 0 when both masks are "
    "empty and undefined (excluded from the mean, counted in hd95.n_undefined) when exactly one is."
)
"""The empty-mask convention, written verbatim into every ``metrics.json``."""

ImageSize = int | Literal["native"] | None

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_RESERVED_NAMES = frozenset({SUMMARY_JSON, SUMMARY_MD})


# --------------------------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class ImagePolicy:
    """How images reach the network and at which resolution metrics are computed.

    Attributes:
        mode: ``"resize"`` (resize to ``image_size`` for the network) or ``"native"`` (pad/crop at native size).
        image_size: the network input size in ``"resize"`` mode, else None.
        source: where the size came from: ``"argument"``, ``"checkpoint config"`` or ``"default"``.
        metrics_resolution: ``"native"`` (logits resized back to each image's size) or ``"network"`` (masks
            resized with nearest neighbour to ``image_size``, as during training validation).
    """

    mode: Literal["resize", "native"]
    image_size: int | None
    source: str
    metrics_resolution: Literal["native", "network"] = "native"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description, including the interpolation used."""
        if self.mode == "resize":
            interp = (
                "image: bilinear resize to the network size then normalisation (build_transforms('none')); "
                + (
                    "logits: bilinear resize back to the native size"
                    if self.metrics_resolution == "native"
                    else "mask: nearest-neighbour resize to the network size"
                )
            )
        else:
            interp = "none: native size, replicate-padded to the model's size multiple, logits cropped back"
        return {
            "mode": self.mode,
            "image_size": self.image_size,
            "source": self.source,
            "metrics_resolution": self.metrics_resolution,
            "interpolation": interp,
        }


def _config_image_size(ckpt: Mapping[str, Any]) -> int | None:
    """The training image size recorded in a checkpoint's config (``config.data.image_size``), if any."""
    config = ckpt.get("config")
    if not isinstance(config, Mapping):
        return None
    data = config.get("data")
    size = data.get("image_size") if isinstance(data, Mapping) else config.get("image_size")
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    return None


def resolve_image_policy(
    image_size: ImageSize, ckpt: Mapping[str, Any], native_resolution: bool = True
) -> ImagePolicy:
    """Decide the image size policy (see the module docstring).

    Args:
        image_size: a positive int (resize to it), ``"native"`` (no resize), or None (the checkpoint config's
            training size when recorded, else native).
        ckpt: the loaded checkpoint.
        native_resolution: in ``"resize"`` mode, compute metrics at the native size (True, default) or at the
            network size (False). Ignored in ``"native"`` mode.

    Returns:
        The policy.

    Raises:
        ValueError: ``image_size`` is neither None, ``"native"`` nor a positive int.
    """
    if image_size == "native":
        return ImagePolicy("native", None, "argument")
    metrics_res: Literal["native", "network"] = "native" if native_resolution else "network"
    if image_size is None:
        size = _config_image_size(ckpt)
        if size is None:
            return ImagePolicy("native", None, "default")
        return ImagePolicy("resize", size, "checkpoint config", metrics_res)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(
            f"image_size must be a positive int (pixels), 'native' or None; received {image_size!r}. "
            "Use the training size (e.g. 256), 'native' to run at each image's own size, or None to take the "
            "size from the checkpoint's config."
        )
    return ImagePolicy("resize", image_size, "argument", metrics_res)


# --------------------------------------------------------------------------------------------- model running


def _resolve_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a valid torch device; use 'cpu', 'cuda' or 'cuda:N'.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was requested but CUDA is not available on this machine; use device='cpu'."
        )
    return dev


def _load_model(
    checkpoint: str | os.PathLike[str], device: torch.device
) -> tuple[dict[str, Any], nn.Module]:
    path = Path(checkpoint)
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt)
    n_classes = int(getattr(model, "num_classes", ckpt["model_kwargs"].get("num_classes", 1)))
    if n_classes not in (1, 2):
        raise CheckpointError(
            f"checkpoint {path} has num_classes={n_classes}; evaluation scores binary segmentation and accepts "
            "num_classes 1 (one logit) or 2 (background/foreground logits). Score each class as its own binary task."
        )
    in_ch = int(getattr(model, "in_channels", 3))
    if in_ch not in (1, 3):
        raise CheckpointError(
            f"checkpoint {path} expects in_channels={in_ch}; images can be read as 1 (grey) or 3 (RGB) channels only."
        )
    if getattr(model, "spatial_dims", 2) != 2:
        raise CheckpointError(
            f"checkpoint {path} holds a 3D model ({ckpt['model_name']}); evaluation handles 2D images only."
        )
    model.to(device).eval()
    return ckpt, model


def _training_fingerprint(ckpt: Mapping[str, Any]) -> str | None:
    """The training data fingerprint a checkpoint records (``ckpt["data"]["fingerprint"]``), if any."""
    data = ckpt.get("data")
    fp = data.get("fingerprint") if isinstance(data, Mapping) else None
    return str(fp) if fp else None


def _binary_logit(logits: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` foreground logit: the single channel, or ``l1 - l0`` for two classes (softmax p1 > 0.5)."""
    if logits.shape[1] == 1:
        return logits
    return logits[:, 1:2] - logits[:, 0:1]


class _Runner:
    """Preprocess uint8 images per the policy, run the model in batches, return binary logits."""

    def __init__(self, model: nn.Module, device: torch.device, policy: ImagePolicy) -> None:
        self.model = model
        self.device = device
        self.policy = policy
        self.in_channels = int(getattr(model, "in_channels", 3))
        self.transform = (
            build_transforms("none", policy.image_size, train=False, in_channels=self.in_channels)
            if policy.mode == "resize" and policy.image_size is not None
            else None
        )

    def _prepare(self, image: np.ndarray) -> torch.Tensor:
        if self.transform is not None:
            array = np.asarray(self.transform(image=image)["image"], dtype=np.float32)
        else:
            array = normalize_image(image, self.in_channels)
        if array.ndim == 2:
            array = array[..., None]
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))

    def target(self, mask: np.ndarray) -> np.ndarray:
        """The ground truth at the resolution metrics are computed at."""
        if self.policy.mode == "resize" and self.policy.metrics_resolution == "network" and self.policy.image_size:
            size = self.policy.image_size
            return np.asarray(Image.fromarray(mask).resize((size, size), Image.Resampling.NEAREST))
        return mask

    @torch.inference_mode()
    def logits(self, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Binary logits, one ``(H, W)`` float32 CPU tensor per image, at the metrics resolution."""
        inputs = [self._prepare(im) for im in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, x in enumerate(inputs):
            groups.setdefault(tuple(x.shape), []).append(i)
        out: list[torch.Tensor | None] = [None] * len(inputs)
        for idx in groups.values():
            batch = torch.stack([inputs[i] for i in idx]).to(self.device)
            logit = _binary_logit(self.model.predict(batch)).float()
            for j, i in enumerate(idx):
                one = logit[j : j + 1]
                if self.policy.metrics_resolution == "native":
                    native = tuple(images[i].shape[:2])
                    if tuple(one.shape[-2:]) != native:
                        one = F.interpolate(one, size=native, mode="bilinear", align_corners=False)
                out[i] = one[0, 0].cpu()
        return [t for t in out if t is not None]


# --------------------------------------------------------------------------------------------- evaluate


@dataclass
class EvalResult:
    """What :func:`evaluate` wrote and computed.

    Attributes:
        out_dir: the output folder.
        metrics_path: ``OUT/metrics.json``.
        per_image_path: ``OUT/per_image.csv``.
        overlay_paths: overlay PNGs (best first, then worst).
        summary: :meth:`SegmentationMeter.compute` output (NaN where undefined).
        per_image: one row per image (stem, height, width, metrics, counts).
        report: the content of ``metrics.json``.
        fingerprint: :func:`lgmsnet.data.dataset_fingerprint` of the evaluated folder.
        policy: the image size policy used.
    """

    out_dir: Path
    metrics_path: Path
    per_image_path: Path
    overlay_paths: list[Path]
    summary: dict[str, float]
    per_image: list[dict[str, Any]]
    report: dict[str, Any]
    fingerprint: str
    policy: ImagePolicy
    n_images: int = field(init=False)

    def __post_init__(self) -> None:
        self.n_images = len(self.per_image)


def _finite(value: Any) -> Any:
    """NaN/inf → None so that the JSON stays standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _select_pairs(
    data_dir: Path,
    stems: Sequence[str] | None,
    split: str | None,
    manifest: str | os.PathLike[str] | SplitManifest | None,
    fingerprint: str,
) -> tuple[list[Pair], dict[str, Any]]:
    pairs = scan_pairs(data_dir)
    selection: dict[str, Any] = {"split": None, "manifest": None, "stems": "all"}
    if stems is not None and split is not None:
        raise ValueError("pass either stems or split (with a manifest), not both.")
    if split is not None:
        if manifest is None:
            raise ValueError(
                f"split {split!r} was requested without a manifest; pass the split manifest written by "
                "`lgmsnet data split` (manifest=... / --manifest M)."
            )
        where = "the manifest object" if isinstance(manifest, SplitManifest) else str(manifest)
        if split not in SPLIT_NAMES:
            raise ValueError(f"unknown split {split!r} for manifest {where}; valid splits: {', '.join(SPLIT_NAMES)}.")
        man = manifest if isinstance(manifest, SplitManifest) else load_manifest(manifest)
        if man.fingerprint != fingerprint:
            logger.warning(
                "Split manifest %s was made for dataset fingerprint %s, but %s has fingerprint %s: the data changed "
                "since the split was made; regenerate the manifest with `lgmsnet data split` if the stems differ.",
                where,
                man.fingerprint[:12],
                data_dir,
                fingerprint[:12],
            )
        stems = man.split(split)
        if not stems:
            raise DatasetError(
                f"split {split!r} of manifest {where} is empty; choose another split or regenerate the manifest "
                "with ratios that give it images."
            )
        selection = {"split": split, "manifest": where, "stems": len(stems)}
    if stems is not None:
        by_stem = {p.stem: p for p in pairs}
        missing = [s for s in stems if s not in by_stem]
        if missing:
            shown = ", ".join(missing[:10]) + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else "")
            src = f"split {split!r} of manifest {selection['manifest']}" if split else "the requested stems"
            raise DatasetError(
                f"{len(missing)} stem(s) of {src} are not in dataset {data_dir}: {shown}; regenerate the split "
                "manifest for this dataset (`lgmsnet data split`)."
            )
        if not stems:
            raise DatasetError(f"no stems requested for dataset {data_dir}; pass at least one stem, or None for all.")
        pairs = [by_stem[s] for s in stems]
        if selection["split"] is None:
            selection["stems"] = len(pairs)
    return pairs, selection


def _read_pair(pair: Pair, in_channels: int, mask_threshold: int) -> tuple[np.ndarray, np.ndarray]:
    image = read_image(pair.image_path, in_channels)
    mask = read_mask(pair.mask_path, mask_threshold)
    if image.shape[:2] != mask.shape:
        raise DatasetError(
            f"image {pair.image_path} is {image.shape[1]}x{image.shape[0]} (WxH) but its mask {pair.mask_path} is "
            f"{mask.shape[1]}x{mask.shape[0]}; re-export the mask at the image's size (or delete the pair)."
        )
    return image, mask


def _contour(mask: np.ndarray, thickness: int) -> np.ndarray:
    """Boundary of a boolean mask (4-connected erosion, outside = background), dilated to ``thickness`` px."""
    padded = np.pad(mask, 1, constant_values=False)
    eroded = (
        padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    )
    edge = mask & ~eroded
    for _ in range(max(0, thickness - 1)):
        p = np.pad(edge, 1, constant_values=False)
        edge = p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    return edge


def _overlay(image: np.ndarray, gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``[image + GT contour (green) | image + prediction (translucent red, red contour) + GT contour]``."""
    rgb = image if image.shape[2] == 3 else np.repeat(image, 3, axis=2)
    thickness = max(1, round(min(rgb.shape[:2]) / 256))
    green = np.array([0, 255, 0], np.uint8)
    red = np.array([255, 0, 0], np.uint8)
    gt_edge = _contour(gt, thickness)
    pred_edge = _contour(pred, thickness)
    left = rgb.copy()
    left[gt_edge] = green
    right = rgb.astype(np.float32)
    right[pred] = 0.55 * right[pred] + 0.45 * red.astype(np.float32)
    right = np.clip(np.round(right), 0, 255).astype(np.uint8)
    right[pred_edge] = red
    right[gt_edge] = green
    gap = np.full((rgb.shape[0], max(2, thickness * 2), 3), 255, np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def _rank(rows: Sequence[dict[str, Any]], n: int) -> tuple[list[str], list[str]]:
    best = sorted(rows, key=lambda r: (-r["dice"], r["stem"]))[:n]
    worst = sorted(rows, key=lambda r: (r["dice"], r["stem"]))[:n]
    return [r["stem"] for r in best], [r["stem"] for r in worst]


def _safe_stem(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", stem)


def _write_overlays(
    out_dir: Path,
    rows: Sequence[dict[str, Any]],
    pairs_by_stem: Mapping[str, Pair],
    runner: _Runner,
    n_overlays: int,
    mask_threshold: int,
    threshold: float,
) -> list[Path]:
    """Re-run the best and worst images by Dice and write their overlays into a fresh ``OUT/overlays``."""
    target = out_dir / OVERLAY_DIR
    tmp = temporary_sibling(target, "tmp")
    tmp.mkdir(parents=True)
    written: list[Path] = []
    try:
        if n_overlays > 0:
            best, worst = _rank(rows, n_overlays)
            wanted = list(dict.fromkeys(best + worst))
            pictures: dict[str, np.ndarray] = {}
            for stem in wanted:
                pair = pairs_by_stem[stem]
                image, mask = _read_pair(pair, runner.in_channels, mask_threshold)
                (logit,) = runner.logits([image])
                pred = binarize(logit[None], threshold=threshold)[0].numpy()
                display = read_image(pair.image_path, 3)
                gt = mask.astype(bool)
                if pred.shape != gt.shape:  # metrics at network size: show the prediction at native size anyway
                    pred = np.asarray(
                        Image.fromarray(pred.astype(np.uint8) * 255).resize(
                            (gt.shape[1], gt.shape[0]), Image.Resampling.NEAREST
                        )
                    ) > 127
                pictures[stem] = _overlay(display, gt, pred)
            for kind, stems in (("best", best), ("worst", worst)):
                for rank, stem in enumerate(stems, start=1):
                    name = f"{kind}_{rank}_{_safe_stem(stem)}.png"
                    Image.fromarray(pictures[stem]).save(tmp / name)
                    written.append(target / name)
        swap_in_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return written


def _per_image_csv(rows: Sequence[dict[str, Any]], hd95_on: bool) -> str:
    columns = ["stem", "height", "width", *METRIC_NAMES, *(["hd95"] if hd95_on else []), "tp", "fp", "fn", "tn"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def _metric_block(summary: Mapping[str, float], hd95_on: bool) -> dict[str, Any]:
    block: dict[str, Any] = {
        name: {"mean": _finite(summary[name]), "std": _finite(summary[f"{name}_std"])} for name in METRIC_NAMES
    }
    if hd95_on:
        block["hd95"] = {
            "mean": _finite(summary["hd95"]),
            "std": _finite(summary["hd95_std"]),
            "n_valid": int(summary["hd95_n_valid"]),
            "n_undefined": int(summary["hd95_n_undefined"]),
            "unit": "pixels at the metrics resolution",
        }
    block["dice_global"] = _finite(summary["dice_global"])
    block["iou_global"] = _finite(summary["iou_global"])
    return block


def _check_common(batch_size: int, n_overlays: int, threshold: float, mask_threshold: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; received {batch_size!r}.")
    if isinstance(n_overlays, bool) or not isinstance(n_overlays, int) or n_overlays < 0:
        raise ValueError(f"n_overlays must be an int >= 0 (0 writes none); received {n_overlays!r}.")
    if not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"threshold must be a probability in (0, 1); received {threshold!r}, e.g. 0.5.")
    if isinstance(mask_threshold, bool) or not isinstance(mask_threshold, int) or not 0 <= mask_threshold <= 254:
        raise ValueError(
            f"mask_threshold must be an int in 0..254 (foreground is mask > threshold); received {mask_threshold!r}. "
            f"{DEFAULT_MASK_THRESHOLD} suits 0/255 masks, 0 suits 0/1 label masks."
        )


def evaluate(
    checkpoint: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    stems: Sequence[str] | None = None,
    split: str | None = None,
    manifest: str | os.PathLike[str] | SplitManifest | None = None,
    image_size: ImageSize = None,
    native_resolution: bool = True,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    hd95: bool = True,
    n_overlays: int = 4,
    threshold: float = 0.5,
    mask_threshold: int = DEFAULT_MASK_THRESHOLD,
) -> EvalResult:
    """Score a checkpoint on a folder dataset and write ``metrics.json``, ``per_image.csv`` and overlays.

    Metrics are per-image values averaged over images (mean and population std), computed at each image's native
    resolution unless ``native_resolution=False``; see the module docstring for the image size policy and
    :data:`EMPTY_MASK_CONVENTION` for empty masks.

    Args:
        checkpoint: lgmsnet checkpoint file.
        data_dir: folder dataset (``images/`` + ``masks/``).
        out_dir: output folder (created; files of a previous evaluation are replaced).
        stems: evaluate only these stems (None: all, or the ``split``).
        split: ``"train"``, ``"val"`` or ``"test"`` of ``manifest``.
        manifest: split manifest (path or object) for ``split``.
        image_size: network input size; ``"native"`` for no resize; None for the checkpoint config's training
            size, else native.
        native_resolution: in resize mode, score against the native mask (True) or the nearest-resized mask.
        batch_size: images per forward pass.
        device: torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``); never chosen implicitly.
        hd95: also compute HD95 (CPU, scipy).
        n_overlays: number of best and of worst images (by Dice) to draw; 0 for none.
        threshold: probability threshold of the prediction.
        mask_threshold: ground-truth binarisation, ``mask > mask_threshold``.

    Returns:
        :class:`EvalResult`.

    Raises:
        CheckpointError: the checkpoint is missing, truncated, not an lgmsnet checkpoint, or not a binary 2D model.
        DatasetError: the dataset is malformed, a file is unreadable, an image and its mask differ in size, a
            requested stem is absent, or the manifest is missing/invalid (the message names the file).
        ValueError: an argument is out of range (unknown split name, bad image size, unavailable device, ...).
    """
    _check_common(batch_size, n_overlays, threshold, mask_threshold)
    started = time.perf_counter()
    ckpt_path, data_path, out_path = Path(checkpoint), Path(data_dir), Path(out_dir)
    dev = _resolve_device(device)
    ckpt, model = _load_model(ckpt_path, dev)
    policy = resolve_image_policy(image_size, ckpt, native_resolution)
    fingerprint = dataset_fingerprint(data_path)
    pairs, selection = _select_pairs(data_path, stems, split, manifest, fingerprint)
    runner = _Runner(model, dev, policy)
    logger.info(
        "Evaluating %s (%s) on %d image(s) of %s: policy %s%s, device %s",
        ckpt_path,
        ckpt["model_name"],
        len(pairs),
        data_path,
        policy.mode,
        f" {policy.image_size}px" if policy.image_size else "",
        dev,
    )

    meter = SegmentationMeter(compute_hd95=hd95, threshold=threshold)
    sizes: dict[str, tuple[int, int]] = {}
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        loaded = [_read_pair(p, runner.in_channels, mask_threshold) for p in chunk]
        logits = runner.logits([image for image, _ in loaded])
        for pair, (image, mask), logit in zip(chunk, loaded, logits, strict=True):
            target = runner.target(mask)
            sizes[pair.stem] = (int(image.shape[0]), int(image.shape[1]))
            meter.update(logit[None, None], torch.from_numpy(target.astype(bool))[None, None], [pair.stem])
        logger.debug("evaluated %d/%d images", min(start + batch_size, len(pairs)), len(pairs))

    summary = meter.compute()
    rows = meter.per_image()
    for row in rows:
        row["height"], row["width"] = sizes[row["stem"]]

    out_path.mkdir(parents=True, exist_ok=True)
    overlays = _write_overlays(
        out_path, rows, {p.stem: p for p in pairs}, runner, n_overlays, mask_threshold, threshold
    )
    per_image_path = atomic_write_text(out_path / PER_IMAGE_FILE, _per_image_csv(rows, hd95))

    info = load_dataset_info(data_path)
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "lgmsnet_version": lgmsnet.__version__,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "n_images": len(rows),
        "metrics": _metric_block(summary, hd95),
        "aggregation": "per-image value, then mean and population std (ddof=0) over images",
        "empty_mask_convention": EMPTY_MASK_CONVENTION,
        "threshold": {"probability": float(threshold), "mask_threshold": mask_threshold},
        "image_size_policy": policy.to_dict(),
        "checkpoint": {
            "path": str(ckpt_path.resolve()),
            "model_name": ckpt["model_name"],
            "model_kwargs": ckpt["model_kwargs"],
            "epoch": ckpt.get("epoch"),
            "training_data_fingerprint": _training_fingerprint(ckpt),
        },
        "dataset": {
            "path": str(data_path.resolve()),
            "fingerprint": fingerprint,
            "synthetic": bool(info.get("synthetic", False)),
            **selection,
        },
        "in_channels": runner.in_channels,
        "device": str(dev),
        "elapsed_s": round(time.perf_counter() - started, 3),
    }
    metrics_path = atomic_write_text(out_path / METRICS_FILE, json.dumps(report, indent=1, allow_nan=False) + "\n")
    logger.info(
        "Evaluated %d image(s) in %.1f s: Dice %.4f ± %.4f, IoU %.4f ± %.4f%s -> %s",
        len(rows),
        time.perf_counter() - started,
        summary["dice"],
        summary["dice_std"],
        summary["iou"],
        summary["iou_std"],
        f", HD95 {summary['hd95']:.2f} px" if hd95 else "",
        out_path,
    )
    return EvalResult(
        out_dir=out_path,
        metrics_path=metrics_path,
        per_image_path=per_image_path,
        overlay_paths=overlays,
        summary=summary,
        per_image=rows,
        report=report,
        fingerprint=fingerprint,
        policy=policy,
    )


# --------------------------------------------------------------------------------------------- zero-shot


def _target_names(
    targets: Mapping[str, str | os.PathLike[str]] | Sequence[str | os.PathLike[str]],
) -> dict[str, Path]:
    if isinstance(targets, Mapping):
        named = {str(k): Path(v) for k, v in targets.items()}
    elif isinstance(targets, (str, os.PathLike)):
        named = {Path(targets).name: Path(targets)}
    else:
        paths = [Path(t) for t in targets]
        names = [p.resolve().name for p in paths]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(
                f"target folders share the name(s) {', '.join(dupes)}; pass a mapping {{name: folder}} "
                "(on the command line: --target NAME=DIR) to give each its own output folder."
            )
        named = dict(zip(names, paths, strict=True))
    if not named:
        raise ValueError("zero_shot needs at least one target dataset; received none.")
    bad = [n for n in named if not _NAME_RE.match(n) or n in _RESERVED_NAMES]
    if bad:
        raise ValueError(
            f"invalid target name(s) {bad}: names become folder names and must match {_NAME_RE.pattern} "
            f"(letters, digits, '.', '_', '-') and not be {sorted(_RESERVED_NAMES)}."
        )
    return named


def _fmt(mean: float | None, std: float | None, digits: int = 4) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std is not None else f"{mean:.{digits}f}"


def _summary_markdown(summary: Mapping[str, Any]) -> str:
    lines = [
        f"# Zero-shot evaluation of `{summary['checkpoint']['path']}` ({summary['checkpoint']['model_name']})",
        "",
        "Per-image metrics, mean ± std over images; HD95 in pixels at the metrics resolution (native by default).",
        "",
        "| dataset | n | Dice | IoU | sensitivity | precision | HD95 (px) | note |",
        "|---|---:|---|---|---|---|---|---|",
    ]
    for t in summary["targets"]:
        m = t["metrics"]
        hd = m.get("hd95")
        note = "NOT zero-shot: same data as training" if not t["zero_shot"] else ""
        if t.get("synthetic"):
            note = "; ".join(filter(None, [note, "synthetic data"]))
        lines.append(
            f"| {t['name']} | {t['n_images']} | {_fmt(m['dice']['mean'], m['dice']['std'])} | "
            f"{_fmt(m['iou']['mean'], m['iou']['std'])} | "
            f"{_fmt(m['sensitivity']['mean'], m['sensitivity']['std'])} | "
            f"{_fmt(m['precision']['mean'], m['precision']['std'])} | "
            f"{_fmt(hd['mean'], hd['std'], 2) if hd else 'n/a'} | {note} |"
        )
    lines += ["", EMPTY_MASK_CONVENTION, ""]
    return "\n".join(lines)


def zero_shot(
    checkpoint: str | os.PathLike[str],
    targets: Mapping[str, str | os.PathLike[str]] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    **evaluate_kwargs: Any,
) -> dict[str, Any]:
    """Evaluate one checkpoint on one or more target datasets it was not trained on.

    Each target is evaluated with :func:`evaluate` into ``OUT/<name>/``; then ``OUT/summary.json`` and
    ``OUT/summary.md`` (a table: dataset, n, Dice/IoU/sensitivity/precision mean ± std, HD95) are written
    atomically. Every target folder is checked (:func:`lgmsnet.data.scan_pairs`) before any evaluation starts.

    If the checkpoint records its training data fingerprint (``ckpt["data"]["fingerprint"]``) and a target has the
    same fingerprint, the result is not zero-shot: a warning is logged and the target is marked
    ``"zero_shot": false`` in the summary.

    Args:
        checkpoint: lgmsnet checkpoint file.
        targets: ``{name: folder}``, or folders (named after their last path component).
        out_dir: output folder.
        **evaluate_kwargs: passed to :func:`evaluate` for every target (``image_size``, ``device``, ``hd95``, ...).

    Returns:
        The summary written to ``summary.json``: checkpoint info, training fingerprint, and per target its name,
        path, fingerprint, n_images, zero_shot flag, metrics block and output folder.

    Raises:
        CheckpointError: bad checkpoint.
        DatasetError: a target folder is malformed (named in the message).
        ValueError: bad target names or evaluate arguments.
    """
    named = _target_names(targets)
    for key in ("checkpoint", "data_dir", "out_dir"):
        if key in evaluate_kwargs:
            raise ValueError(f"zero_shot sets {key!r} itself; remove it from the keyword arguments.")
    ckpt_path, out_path = Path(checkpoint), Path(out_dir)
    ckpt = load_checkpoint(ckpt_path)
    train_fp = _training_fingerprint(ckpt)
    for path in named.values():
        scan_pairs(path)

    entries: list[dict[str, Any]] = []
    for name, path in named.items():
        result = evaluate(ckpt_path, path, out_path / name, **evaluate_kwargs)
        is_zero_shot = not (train_fp and result.fingerprint == train_fp)
        if not is_zero_shot:
            logger.warning(
                "!!! NOT ZERO-SHOT: target %r (%s) has the same dataset fingerprint %s as the checkpoint's training "
                "data. Its scores measure performance on the training data, not transfer. !!!",
                name,
                path,
                train_fp[:12] if train_fp else "",
            )
        entries.append(
            {
                "name": name,
                "path": str(path.resolve()),
                "fingerprint": result.fingerprint,
                "synthetic": result.report["dataset"]["synthetic"],
                "n_images": result.n_images,
                "zero_shot": is_zero_shot,
                "metrics": result.report["metrics"],
                "image_size_policy": result.report["image_size_policy"],
                "out_dir": str(result.out_dir),
            }
        )
    summary: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "lgmsnet_version": lgmsnet.__version__,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": {"path": str(ckpt_path.resolve()), "model_name": ckpt["model_name"]},
        "training_data_fingerprint": train_fp,
        "empty_mask_convention": EMPTY_MASK_CONVENTION,
        "targets": entries,
    }
    atomic_write_text(out_path / SUMMARY_JSON, json.dumps(summary, indent=1, allow_nan=False) + "\n")
    atomic_write_text(out_path / SUMMARY_MD, _summary_markdown(summary))
    return summary


def summary_table(summary: Mapping[str, Any]) -> str:
    """The markdown table of a :func:`zero_shot` summary (the content of ``summary.md``)."""
    return _summary_markdown(summary)


# --------------------------------------------------------------------------------------------- predict


def _list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(f"images folder {folder} does not exist or is not a directory; pass a folder of images.")
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files and (folder / "images").is_dir():
        logger.info("No images directly in %s; using its images/ subfolder", folder)
        return _list_images(folder / "images")
    if not files:
        raise DatasetError(
            f"no images in {folder}: expected files with extension "
            f"{', '.join(sorted(e.lstrip('.') for e in IMAGE_EXTENSIONS))}."
        )
    by_stem: dict[str, list[str]] = {}
    for p in files:
        by_stem.setdefault(p.stem, []).append(p.name)
    dupes = [f"{', '.join(v)}" for v in by_stem.values() if len(v) > 1]
    if dupes:
        raise DatasetError(
            f"{folder}: several images share a stem and would write the same mask: {'; '.join(dupes)}; "
            "rename or remove the extra files."
        )
    return files


def predict(
    checkpoint: str | os.PathLike[str],
    images_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    image_size: ImageSize = None,
    threshold: float = 0.5,
    device: str | torch.device = "cpu",
    batch_size: int = 4,
    overwrite: bool = False,
) -> list[Path]:
    """Write a binary mask (``{0, 255}`` grey PNG, same stem, native size) for every image of a folder.

    All or nothing: masks are written into a temporary sibling folder that replaces ``out_dir`` only when every
    image succeeded, so a corrupt image leaves no partial output. ``out_dir`` must be absent, empty, a previous
    :func:`predict` output (it holds ``.lgmsnet-predict.json``, a hidden provenance file), or ``overwrite`` must
    be set. Images are resized per the image size policy of :func:`evaluate`.

    Args:
        checkpoint: lgmsnet checkpoint file.
        images_dir: folder of png/jpg/jpeg/bmp/tif/tiff images (or a dataset folder with ``images/``).
        out_dir: output folder of masks.
        image_size: network input size, ``"native"``, or None (checkpoint config, else native).
        threshold: foreground probability threshold.
        device: torch device.
        batch_size: images per forward pass.
        overwrite: replace a non-empty ``out_dir`` that is not a previous prediction.

    Returns:
        The mask paths, sorted by stem.

    Raises:
        CheckpointError: bad checkpoint.
        DatasetError: no images, two images with one stem, an unreadable image (named), or a non-empty
            ``out_dir`` that is not a previous prediction.
        ValueError: bad arguments.
    """
    _check_common(batch_size, 0, threshold, DEFAULT_MASK_THRESHOLD)
    ckpt_path, target = Path(checkpoint), Path(out_dir)
    if target.exists() and not overwrite:
        if not target.is_dir() or (any(target.iterdir()) and not (target / PREDICT_INFO_FILE).is_file()):
            raise DatasetError(
                f"output folder {target} exists, is not empty and is not a previous prediction; choose a new "
                "folder or pass overwrite=True (--overwrite) to replace it."
            )
    dev = _resolve_device(device)
    ckpt, model = _load_model(ckpt_path, dev)
    policy = resolve_image_policy(image_size, ckpt)
    files = _list_images(Path(images_dir))
    runner = _Runner(model, dev, policy)
    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(target, "tmp")
    tmp.mkdir()
    names: list[str] = []
    try:
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            images = [read_image(p, runner.in_channels) for p in chunk]
            for path, logit in zip(chunk, runner.logits(images), strict=True):
                mask = binarize(logit[None], threshold=threshold)[0].numpy()
                name = f"{path.stem}.png"
                Image.fromarray(mask.astype(np.uint8) * 255).save(tmp / name)
                names.append(name)
        info = {
            "checkpoint": str(ckpt_path.resolve()),
            "model_name": ckpt["model_name"],
            "images_dir": str(Path(images_dir).resolve()),
            "n_images": len(names),
            "threshold": float(threshold),
            "image_size_policy": policy.to_dict(),
            "mask_values": [0, 255],
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        (tmp / PREDICT_INFO_FILE).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        if target.exists() and not target.is_dir():
            target.unlink()
        swap_in_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("Wrote %d mask(s) to %s in %.1f s", len(names), target, time.perf_counter() - started)
    return sorted(target / n for n in names)
