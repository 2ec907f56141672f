"""Binary segmentation metrics: per-image confusion counts, ratios from counts, HD95, and an accumulator.

Predictions are binarised at probability 0.5 (``sigmoid(logit) > 0.5``, i.e. ``logit > 0``) unless a mask is
passed. Metrics are computed **per image and then averaged over images** (the convention of the field); the
pooled ("global") Dice over all pixels of all images is reported as an extra. Counts are int64; ratios are float64.

Definitions, from the per-image counts ``tp, fp, fn, tn``:

================  ==================================  ======================
metric            formula                             when the denominator is 0
================  ==================================  ======================
``dice``          2 tp / (2 tp + fp + fn)             1 (both masks empty)
``iou``           tp / (tp + fp + fn)                 1 (both masks empty)
``sensitivity``   tp / (tp + fn)   (recall)           1 (nothing to find)
``precision``     tp / (tp + fp)                      1 (nothing claimed, so no false claim)
``specificity``   tn / (tn + fp)                      1 (no background to get wrong)
``accuracy``      (tp + tn) / (tp + fp + fn + tn)     never (images are non-empty)
``hd95``          see below, in pixels                0 if both empty; NaN if exactly one is empty
================  ==================================  ======================

One rule covers every ratio: **0/0 counts as 1** (the quantity it measures had no way to go wrong); no ratio is
ever NaN. Exact ratios are used (the reference's ``(|P∧G| + 1e-5) / (|P∨G| + 1e-5)`` smoothing is not). Empty
ground truth is scored as empty; it is never replaced by an all-foreground mask (a defect of the reference code).
The empty cases, per image:

=========================  ======  ======  ===========  =========  ======
case                        Dice    IoU     sensitivity  precision  HD95
=========================  ======  ======  ===========  =========  ======
GT empty, pred empty        1       1       1            1          0
GT empty, pred non-empty    0       0       1            0          NaN
GT non-empty, pred empty    0       0       0            1          NaN
=========================  ======  ======  ===========  =========  ======

(specificity and accuracy follow the same rule; with an all-foreground GT, specificity is 1.)

**HD95** (95th-percentile symmetric Hausdorff distance, in pixels, unit spacing) matches
``monai.metrics.compute_hausdorff_distance(pred, gt, percentile=95)`` of MONAI 1.6: the boundary of a mask is
``mask & ~binary_erosion(mask)`` (4-connected cross structuring element, outside the image counts as background);
for every boundary pixel of the prediction the Euclidean distance to the nearest GT boundary pixel is taken, and
vice versa; the 95th percentile (linear interpolation) of each of the two directed sets is computed and the larger
one is reported. NaN values (one mask empty) are excluded from the mean; :meth:`SegmentationMeter.compute` reports
how many images were excluded (``hd95_n_undefined``). MONAI returns ``inf`` there; we use NaN so that the mean
stays finite and the exclusion is visible. HD95 needs scipy (imported when HD95 is computed).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from lgmsnet import dist as _dist

__all__ = [
    "METRIC_NAMES",
    "ConfusionCounts",
    "SegmentationMeter",
    "binarize",
    "confusion_counts",
    "hd95",
    "metrics_from_counts",
]

logger = logging.getLogger(__name__)

METRIC_NAMES: tuple[str, ...] = ("dice", "iou", "sensitivity", "precision", "specificity", "accuracy")
"""Names of the count-based metrics, in the order they are reported."""


class ConfusionCounts(NamedTuple):
    """Per-image confusion counts of a binary segmentation, each an int64 tensor of shape ``(N,)``."""

    tp: torch.Tensor
    fp: torch.Tensor
    fn: torch.Tensor
    tn: torch.Tensor

    def stack(self) -> torch.Tensor:
        """Return the counts as one ``(N, 4)`` int64 tensor, columns ``tp, fp, fn, tn``."""
        return torch.stack([self.tp, self.fp, self.fn, self.tn], dim=1)

    @classmethod
    def from_stacked(cls, stacked: torch.Tensor) -> ConfusionCounts:
        """Build from an ``(N, 4)`` tensor with columns ``tp, fp, fn, tn``."""
        if stacked.ndim != 2 or stacked.shape[1] != 4:
            raise ValueError(
                f"ConfusionCounts.from_stacked expects shape (N, 4) with columns tp, fp, fn, tn; "
                f"received {tuple(stacked.shape)}."
            )
        s = stacked.to(torch.int64)
        return cls(s[:, 0], s[:, 1], s[:, 2], s[:, 3])


def binarize(pred: torch.Tensor, from_logits: bool = True, threshold: float = 0.5) -> torch.Tensor:
    """Turn logits, probabilities or a mask into a boolean foreground mask.

    A bool or integer tensor is taken as a mask already (integer values must be 0 or 1). A floating tensor is
    thresholded: probabilities ``p > threshold``, or logits ``x > log(t / (1 - t))`` (``x > 0`` for 0.5), which
    equals ``sigmoid(x) > t`` without the float saturation of the sigmoid.

    Args:
        pred: logits, probabilities or a mask.
        from_logits: whether a floating ``pred`` holds logits (True) or probabilities (False).
        threshold: probability threshold in (0, 1).

    Returns:
        Boolean mask without the channel dimension.

    Raises:
        ValueError: bad shape, threshold out of range, NaN values, or an integer mask with values other than 0/1.

    **Shape:**
        - pred: ``(N, 1, H, W)`` or ``(N, H, W)``
        - output: ``(N, H, W)``, bool
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie in (0, 1) (a probability); received {threshold}.")
    pred = _squeeze_channel(pred, "pred")
    if pred.dtype == torch.bool:
        return pred
    if not torch.is_floating_point(pred):
        _check_zero_one(pred, "pred")
        return pred != 0
    if torch.isnan(pred).any():
        raise ValueError(
            "pred contains NaN values; a diverged model cannot be scored. Check the training loss and inputs."
        )
    cut = math.log(threshold / (1.0 - threshold)) if from_logits else threshold
    return pred > cut


def confusion_counts(pred_mask: torch.Tensor, target: torch.Tensor) -> ConfusionCounts:
    """Per-image true/false positive/negative pixel counts.

    Args:
        pred_mask: binary prediction (bool, or 0/1 integers or floats); use :func:`binarize` on logits first.
        target: binary ground truth (bool, or 0/1 integers or floats).

    Returns:
        :class:`ConfusionCounts` with int64 tensors on the inputs' device.

    Raises:
        ValueError: shapes differ or are not ``(N, [1,] H, W)``, or a mask holds values other than 0 and 1.

    **Shape:**
        - pred_mask: ``(N, 1, H, W)`` or ``(N, H, W)``
        - target: ``(N, 1, H, W)`` or ``(N, H, W)``
        - output fields: ``(N,)`` each
    """
    p, g = _binary_pair(pred_mask, target)
    n = p.shape[0]
    p = p.reshape(n, -1)
    g = g.reshape(n, -1)
    tp = (p & g).sum(dim=1, dtype=torch.int64)
    fp = (p & ~g).sum(dim=1, dtype=torch.int64)
    fn = (~p & g).sum(dim=1, dtype=torch.int64)
    tn = torch.full_like(tp, p.shape[1]) - tp - fp - fn
    return ConfusionCounts(tp, fp, fn, tn)


def metrics_from_counts(counts: ConfusionCounts) -> dict[str, torch.Tensor]:
    """Per-image Dice, IoU, sensitivity, precision, specificity and accuracy from confusion counts.

    A ratio whose denominator is 0 is 1 (see the module docstring for the table of empty cases).

    Args:
        counts: per-image counts.

    Returns:
        ``{name: float64 tensor (N,)}`` for every name in :data:`METRIC_NAMES`.

    **Shape:**
        - counts fields: ``(N,)``
        - output values: ``(N,)``, float64
    """
    tp, fp, fn, tn = (c.to(torch.float64) for c in counts)
    return {
        "dice": _ratio(2.0 * tp, 2.0 * tp + fp + fn),
        "iou": _ratio(tp, tp + fp + fn),
        "sensitivity": _ratio(tp, tp + fn),
        "precision": _ratio(tp, tp + fp),
        "specificity": _ratio(tn, tn + fp),
        "accuracy": _ratio(tp + tn, tp + fp + fn + tn),
    }


def hd95(pred_mask: torch.Tensor, target: torch.Tensor, percentile: float = 95.0) -> torch.Tensor:
    """Per-image percentile symmetric Hausdorff distance between mask boundaries, in pixels.

    Matches ``monai.metrics.compute_hausdorff_distance(..., percentile=percentile)`` (MONAI 1.6): boundary =
    mask minus its erosion; directed distances from each boundary pixel to the nearest boundary pixel of the
    other mask (exact Euclidean distance transform); percentile of each direction; the larger of the two.
    Both masks empty gives 0; exactly one empty gives NaN. Runs on CPU with scipy.

    Args:
        pred_mask: binary prediction (bool or 0/1 values); use :func:`binarize` on logits first.
        target: binary ground truth.
        percentile: in [0, 100]; 100 gives the classic Hausdorff distance.

    Returns:
        float64 CPU tensor of distances.

    Raises:
        ValueError: bad shapes or values, or ``percentile`` outside [0, 100].
        ImportError: scipy is not installed.

    **Shape:**
        - pred_mask: ``(N, 1, H, W)`` or ``(N, H, W)``
        - target: ``(N, 1, H, W)`` or ``(N, H, W)``
        - output: ``(N,)``
    """
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must lie in [0, 100]; received {percentile}.")
    p, g = _binary_pair(pred_mask, target)
    p_np = p.cpu().numpy()
    g_np = g.cpu().numpy()
    out = np.array([_hd_single(p_np[i], g_np[i], percentile) for i in range(p_np.shape[0])], dtype=np.float64)
    return torch.from_numpy(out)


class SegmentationMeter:
    """Accumulates per-image binary segmentation metrics over batches (and across DDP ranks).

    Each :meth:`update` stores one row per image: its confusion counts (and its HD95 when ``compute_hd95``).
    :meth:`compute` reports, for every metric, the **mean over images of the per-image value** (the field's
    convention) and its standard deviation over images (population std, ddof=0), plus the image count and the
    pooled ("global") Dice and IoU from the summed counts. Empty-mask conventions: see the module docstring.

    In DDP, call :meth:`reduce` on every rank: it all-gathers the per-image rows (ranks may hold different
    numbers of images) and returns a meter holding every image, so ``reduce().compute()`` equals a
    single-process computation over the same images. Use a sampler that does not pad the dataset with repeated
    images, or pass stems and ``deduplicate=True``.

    Args:
        from_logits: whether floating inputs to :meth:`update` are logits (True) or probabilities (False).
        threshold: probability threshold (0.5, i.e. ``logit > 0``).
        compute_hd95: also compute HD95 per image (CPU, scipy; slow on large images). Off by default.
        hd_percentile: percentile used for the Hausdorff distance.

    Example::

        meter = SegmentationMeter()
        for images, masks, stems in loader:
            meter.update(model(images), masks, stems)
        summary = meter.reduce().compute()  # {"dice": ..., "dice_std": ..., "n_images": ..., ...}
    """

    def __init__(
        self,
        from_logits: bool = True,
        threshold: float = 0.5,
        compute_hd95: bool = False,
        hd_percentile: float = 95.0,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1) (a probability); received {threshold}.")
        if not 0.0 <= hd_percentile <= 100.0:
            raise ValueError(f"hd_percentile must lie in [0, 100]; received {hd_percentile}.")
        self.from_logits = bool(from_logits)
        self.threshold = float(threshold)
        self.compute_hd95 = bool(compute_hd95)
        self.hd_percentile = float(hd_percentile)
        self._counts: list[torch.Tensor] = []
        self._hd: list[torch.Tensor] = []
        self._stems: list[str | None] = []

    def __len__(self) -> int:
        return len(self._stems)

    @property
    def n_images(self) -> int:
        """Number of images accumulated so far (on this rank, before :meth:`reduce`)."""
        return len(self._stems)

    def reset(self) -> None:
        """Forget every accumulated image."""
        self._counts.clear()
        self._hd.clear()
        self._stems.clear()

    def update(
        self, logits_or_probs: torch.Tensor, target: torch.Tensor, stems: Sequence[str] | None = None
    ) -> None:
        """Add a batch of images.

        Args:
            logits_or_probs: network output (logits or probabilities, see ``from_logits``) or a bool mask.
            target: binary ground truth (bool, or 0/1 integers or floats).
            stems: optional image identifiers, one per image, reported by :meth:`per_image`.

        Raises:
            ValueError: bad shapes, non-binary target values, NaN predictions, or a wrong number of stems.

        **Shape:**
            - logits_or_probs: ``(N, 1, H, W)`` or ``(N, H, W)``
            - target: ``(N, 1, H, W)`` or ``(N, H, W)``
        """
        pred = binarize(logits_or_probs, from_logits=self.from_logits, threshold=self.threshold)
        n = pred.shape[0]
        if stems is None:
            stem_list: list[str | None] = [None] * n
        else:
            if isinstance(stems, str) or len(stems) != n:
                received = repr(stems) if isinstance(stems, str) else f"{len(stems)} stems"
                raise ValueError(
                    f"stems must be a sequence with one string per image ({n} images in this batch); received "
                    f"{received}. Pass a list of image names, or None."
                )
            stem_list = [str(s) for s in stems]
        counts = confusion_counts(pred, target)
        self._counts.append(counts.stack().cpu())
        if self.compute_hd95:
            self._hd.append(hd95(pred, target, percentile=self.hd_percentile))
        self._stems.extend(stem_list)

    def counts(self) -> ConfusionCounts:
        """Return the per-image counts of every accumulated image, in insertion order."""
        return ConfusionCounts.from_stacked(self._stacked_counts())

    def per_image(self) -> list[dict[str, Any]]:
        """Return one row per image: ``stem``, ``tp``, ``fp``, ``fn``, ``tn``, each metric (and ``hd95``).

        HD95 is ``float('nan')`` where undefined (exactly one mask empty).
        """
        counts = self.counts()
        metrics = metrics_from_counts(counts)
        hd = self._stacked_hd()
        rows: list[dict[str, Any]] = []
        for i, stem in enumerate(self._stems):
            row: dict[str, Any] = {"stem": stem}
            for name, col in zip(("tp", "fp", "fn", "tn"), counts, strict=True):
                row[name] = int(col[i])
            for name in METRIC_NAMES:
                row[name] = float(metrics[name][i])
            if hd is not None:
                row["hd95"] = float(hd[i])
            rows.append(row)
        return rows

    def compute(self) -> dict[str, float]:
        """Summarise the accumulated images.

        Returns:
            ``n_images``; for each metric ``m`` in :data:`METRIC_NAMES`: ``m`` (mean over images of the per-image
            value) and ``m_std`` (population std over images); ``dice_global`` and ``iou_global`` (from the
            counts summed over all pixels of all images); with HD95 on: ``hd95`` and ``hd95_std`` over the images
            where it is defined, ``hd95_n_valid`` and ``hd95_n_undefined`` (NaN mean when none is defined).

        Raises:
            RuntimeError: no image has been added.
        """
        if not self._stems:
            raise RuntimeError(
                "SegmentationMeter.compute() called before any update(); there are no images to summarise. "
                "Call update() with at least one batch (after reduce() in DDP, some rank must have images)."
            )
        counts = self.counts()
        metrics = metrics_from_counts(counts)
        out: dict[str, float] = {"n_images": len(self._stems)}
        for name in METRIC_NAMES:
            values = metrics[name]
            out[name] = float(values.mean())
            out[f"{name}_std"] = float(values.std(correction=0))
        tp, fp, fn, _ = (int(c.sum()) for c in counts)
        out["dice_global"] = _scalar_ratio(2 * tp, 2 * tp + fp + fn)
        out["iou_global"] = _scalar_ratio(tp, tp + fp + fn)
        hd = self._stacked_hd()
        if hd is not None:
            valid = hd[~torch.isnan(hd)]
            out["hd95"] = float(valid.mean()) if valid.numel() else float("nan")
            out["hd95_std"] = float(valid.std(correction=0)) if valid.numel() else float("nan")
            out["hd95_n_valid"] = int(valid.numel())
            out["hd95_n_undefined"] = int(hd.numel() - valid.numel())
        return out

    def reduce(self, group: Any | None = None, deduplicate: bool = False) -> SegmentationMeter:
        """Gather every rank's per-image rows; return a new meter holding all of them (on every rank).

        Collective: every rank of ``group`` must call it. Rows are ordered by rank, then insertion order. Ranks
        may hold different numbers of images (including none). Outside distributed runs, returns a copy.

        Args:
            group: process group; None means the default group.
            deduplicate: keep only the first row of each stem (for samplers that pad with repeated images);
                requires stems on every image.

        Returns:
            A new :class:`SegmentationMeter` with the same settings and every rank's images.

        Raises:
            ValueError: ranks were built with different settings, or ``deduplicate`` without stems.
        """
        config = (self.from_logits, self.threshold, self.compute_hd95, self.hd_percentile)
        gathered_info = _dist.all_gather_object((config, list(self._stems)), group=group)
        configs = [info[0] for info in gathered_info]
        if any(c != config for c in configs):
            raise ValueError(
                "SegmentationMeter.reduce: ranks use different settings (from_logits, threshold, compute_hd95, "
                f"hd_percentile): {configs}. Build the meter with the same arguments on every rank."
            )
        stems: list[str | None] = [s for info in gathered_info for s in info[1]]
        counts = _dist.all_gather_tensor(self._stacked_counts(), group=group)
        hd_local = self._stacked_hd()
        hd = _dist.all_gather_tensor(hd_local, group=group) if hd_local is not None else None

        if deduplicate:
            if any(s is None for s in stems):
                raise ValueError(
                    "SegmentationMeter.reduce(deduplicate=True) needs a stem for every image, but some rows have "
                    "none. Pass stems to update(), or call reduce() without deduplicate."
                )
            seen: set[str | None] = set()
            keep: list[int] = []
            for i, s in enumerate(stems):
                if s not in seen:
                    seen.add(s)
                    keep.append(i)
            if len(keep) != len(stems):
                logger.info("reduce: dropped %d duplicate image rows", len(stems) - len(keep))
            index = torch.tensor(keep, dtype=torch.int64)
            counts = counts[index]
            hd = hd[index] if hd is not None else None
            stems = [stems[i] for i in keep]

        merged = SegmentationMeter(
            from_logits=self.from_logits,
            threshold=self.threshold,
            compute_hd95=self.compute_hd95,
            hd_percentile=self.hd_percentile,
        )
        merged._counts.append(counts.cpu())
        if hd is not None:
            merged._hd.append(hd.cpu())
        merged._stems.extend(stems)
        return merged

    def _stacked_counts(self) -> torch.Tensor:
        if not self._counts:
            return torch.zeros((0, 4), dtype=torch.int64)
        return torch.cat(self._counts, dim=0)

    def _stacked_hd(self) -> torch.Tensor | None:
        if not self.compute_hd95:
            return None
        if not self._hd:
            return torch.zeros((0,), dtype=torch.float64)
        return torch.cat(self._hd, dim=0)


# --------------------------------------------------------------------------------------------- helpers


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` elementwise, with 1 where ``den == 0`` (the documented empty-case rule)."""
    safe = torch.where(den == 0, torch.ones_like(den), den)
    return torch.where(den == 0, torch.ones_like(num), num / safe)


def _scalar_ratio(num: int, den: int) -> float:
    return 1.0 if den == 0 else num / den


def _squeeze_channel(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.ndim == 4:
        if x.shape[1] != 1:
            raise ValueError(
                f"{name} has shape {tuple(x.shape)}: binary metrics expect one channel, (N, 1, H, W) or (N, H, W). "
                "For multiclass outputs take the argmax and score each class as its own binary mask."
            )
        return x[:, 0]
    if x.ndim == 3:
        return x
    raise ValueError(
        f"{name} has shape {tuple(x.shape)} ({x.ndim}-D); allowed: (N, 1, H, W) or (N, H, W). "
        "Add the batch dimension with x.unsqueeze(0) for a single image."
    )


def _check_zero_one(x: torch.Tensor, name: str) -> None:
    bad = (x != 0) & (x != 1)
    if bool(bad.any()):
        raise ValueError(
            f"{name} must be a binary mask with values 0 and 1; found values in [{x.min().item()}, "
            f"{x.max().item()}]. Binarise it in the data layer (for example mask > 0 for 0/255 masks)."
        )


def _as_bool_mask(x: torch.Tensor, name: str) -> torch.Tensor:
    x = _squeeze_channel(x, name)
    if x.dtype == torch.bool:
        return x
    _check_zero_one(x, name)
    return x != 0


def _binary_pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = _as_bool_mask(pred, "pred")
    g = _as_bool_mask(target, "target")
    if p.shape != g.shape:
        raise ValueError(
            f"pred and target describe different images: pred {tuple(p.shape)} vs target {tuple(g.shape)} "
            "(after removing the channel dimension). They must have the same (N, H, W)."
        )
    if p.shape[1] == 0 or p.shape[2] == 0:
        raise ValueError(f"images must have at least one pixel; received spatial size {tuple(p.shape[1:])}.")
    if g.device != p.device:
        g = g.to(p.device)
    return p, g


def _hd_single(pred: np.ndarray, gt: np.ndarray, percentile: float) -> float:
    """Percentile symmetric Hausdorff distance of two 2-D boolean masks (see :func:`hd95`)."""
    try:
        from scipy import ndimage
    except ImportError as exc:  # pragma: no cover - scipy ships with the core dependencies
        raise ImportError(
            "HD95 needs scipy (scipy.ndimage distance transforms); install it with `pip install scipy`, "
            "or build the SegmentationMeter with compute_hd95=False."
        ) from exc

    has_p, has_g = bool(pred.any()), bool(gt.any())
    if not has_p and not has_g:
        return 0.0
    if not has_p or not has_g:
        return float("nan")
    # Crop to the bounding box of the union: every boundary pixel lies inside it, pixels outside are background,
    # and scipy's erosion treats the outside as background too, so the result is unchanged (and much faster).
    rows = np.flatnonzero((pred | gt).any(axis=1))
    cols = np.flatnonzero((pred | gt).any(axis=0))
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    p, g = pred[window], gt[window]
    edge_p = p & ~ndimage.binary_erosion(p)
    edge_g = g & ~ndimage.binary_erosion(g)
    dist_to_g = ndimage.distance_transform_edt(~edge_g)
    dist_to_p = ndimage.distance_transform_edt(~edge_p)
    d_pg = np.percentile(dist_to_g[edge_p], percentile)
    d_gp = np.percentile(dist_to_p[edge_g], percentile)
    return float(max(d_pg, d_gp))
