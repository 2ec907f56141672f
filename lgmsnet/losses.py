"""Segmentation losses: the LGMSNet reference loss (BCE + soft Dice) and its multiclass counterpart.

Each loss is a pure function plus a thin :class:`torch.nn.Module` wrapper that only stores the weights.

Reference loss (binary, one logit channel), as in the authors' training script::

    loss = bce_weight * BCEWithLogits(logits, target)            # mean over every pixel of the batch
         + (1 - mean_n Dice_n)                                   # soft Dice per sample, on sigmoid probabilities
    Dice_n = (2 * sum(p * g) + smooth) / (sum(p) + sum(g) + smooth),  smooth = 1e-5

The Dice term is computed in float32 even under mixed precision: a sum of 256x256 probabilities overflows float16.
Target values are not range-checked here (that would force a GPU synchronisation every step); they must lie in
[0, 1]. A 0/255 mask is a data-layer bug that the metrics (:mod:`lgmsnet.metrics`) reject loudly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BCEDiceLoss", "CEDiceLoss", "bce_dice_loss", "ce_dice_loss", "soft_dice_per_sample"]

DEFAULT_SMOOTH = 1e-5


def soft_dice_per_sample(probs: torch.Tensor, target: torch.Tensor, smooth: float = DEFAULT_SMOOTH) -> torch.Tensor:
    """Soft Dice coefficient of each sample, summing over every non-batch dimension.

    Args:
        probs: probabilities in [0, 1].
        target: ground truth in [0, 1], same shape as ``probs``.
        smooth: added to numerator and denominator; makes two empty masks score 1.

    Returns:
        Dice per sample, ``(2 * sum(p * g) + smooth) / (sum(p) + sum(g) + smooth)``.

    **Shape:**
        - probs: ``(N, *)``
        - target: ``(N, *)``, same as ``probs``
        - output: ``(N,)``
    """
    if probs.shape != target.shape:
        raise ValueError(
            f"soft_dice_per_sample: probs has shape {tuple(probs.shape)} but target has {tuple(target.shape)}; "
            "they must be equal."
        )
    p = probs.reshape(probs.shape[0], -1)
    g = target.reshape(target.shape[0], -1)
    intersection = (p * g).sum(dim=1)
    return (2.0 * intersection + smooth) / (p.sum(dim=1) + g.sum(dim=1) + smooth)


def bce_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    bce_weight: float = 0.5,
    smooth: float = DEFAULT_SMOOTH,
) -> torch.Tensor:
    """The LGMSNet reference loss: ``bce_weight * BCE-with-logits + (1 - mean soft Dice)``.

    BCE is averaged over every pixel of the batch; the soft Dice (on sigmoid probabilities) is computed per
    sample and averaged over samples.

    Args:
        logits: raw network outputs (no sigmoid), floating point.
        target: binary (or soft) ground truth in [0, 1]; may omit the channel dimension.
        bce_weight: weight of the BCE term (the reference uses 0.5).
        smooth: Dice smoothing constant (the reference uses 1e-5).

    Returns:
        Scalar loss (float32 or the logits' dtype if wider).

    Raises:
        ValueError: shapes do not match, there is more than one channel, or the logits are not floating point.

    **Shape:**
        - logits: ``(N, 1, H, W)`` (any number of spatial dimensions works)
        - target: ``(N, 1, H, W)`` or ``(N, H, W)``
        - output: ``()``
    """
    target = _check_binary_inputs(logits, target, "bce_dice_loss")
    compute_dtype = torch.promote_types(logits.dtype, torch.float32)
    logits_c = logits.to(compute_dtype)
    target_c = target.to(compute_dtype)
    bce = F.binary_cross_entropy_with_logits(logits_c, target_c, reduction="mean")
    dice = soft_dice_per_sample(torch.sigmoid(logits_c), target_c, smooth=smooth)
    return bce_weight * bce + (1.0 - dice.mean())


def ce_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    ce_weight: float = 0.5,
    smooth: float = DEFAULT_SMOOTH,
    include_background: bool = False,
) -> torch.Tensor:
    """Multiclass counterpart: ``ce_weight * cross-entropy + (1 - mean soft Dice over foreground classes)``.

    Cross-entropy is averaged over every pixel; the soft Dice is computed on softmax probabilities per sample
    and per class (class 0 = background is skipped unless ``include_background``), then averaged over samples
    and classes.

    Args:
        logits: raw network outputs with C >= 2 channels.
        target: integer class indices in ``[0, C)``; may carry a singleton channel dimension.
        ce_weight: weight of the cross-entropy term.
        smooth: Dice smoothing constant.
        include_background: also average the Dice of class 0.

    Returns:
        Scalar loss.

    Raises:
        ValueError: wrong shapes, fewer than 2 classes, or a non-integer target.

    **Shape:**
        - logits: ``(N, C, H, W)`` (any number of spatial dimensions works), C >= 2
        - target: ``(N, H, W)`` or ``(N, 1, H, W)``, integer dtype
        - output: ``()``
    """
    if not torch.is_floating_point(logits):
        raise ValueError(f"ce_dice_loss: logits must be floating point; received dtype {logits.dtype}.")
    if logits.ndim < 3 or logits.shape[1] < 2:
        raise ValueError(
            f"ce_dice_loss expects logits of shape (N, C, *spatial) with C >= 2; received {tuple(logits.shape)}. "
            "For a single foreground channel use bce_dice_loss."
        )
    if torch.is_floating_point(target) or target.dtype == torch.bool:
        raise ValueError(
            f"ce_dice_loss expects integer class indices as target; received dtype {target.dtype}. "
            "Convert with target.long() (values in [0, C))."
        )
    if target.ndim == logits.ndim and target.shape[1] == 1:
        target = target[:, 0]
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"ce_dice_loss: logits {tuple(logits.shape)} need a target of shape {expected} (or with a singleton "
            f"channel dimension); received {tuple(target.shape)}."
        )
    n_classes = logits.shape[1]
    compute_dtype = torch.promote_types(logits.dtype, torch.float32)
    logits_c = logits.to(compute_dtype)
    target_l = target.long()
    ce = F.cross_entropy(logits_c, target_l, reduction="mean")
    probs = torch.softmax(logits_c, dim=1)
    one_hot = F.one_hot(target_l, n_classes).movedim(-1, 1).to(compute_dtype)
    first = 0 if include_background else 1
    p = probs[:, first:]
    g = one_hot[:, first:]
    # (N, K, *spatial) -> (N * K, prod(spatial)): Dice per sample and class.
    dice = soft_dice_per_sample(p.reshape(-1, *p.shape[2:]), g.reshape(-1, *g.shape[2:]), smooth=smooth)
    return ce_weight * ce + (1.0 - dice.mean())


class BCEDiceLoss(nn.Module):
    """Module wrapper of :func:`bce_dice_loss` (the LGMSNet reference loss).

    Args:
        bce_weight: weight of the BCE term.
        smooth: Dice smoothing constant.

    **Shape:**
        - logits: ``(N, 1, H, W)``
        - target: ``(N, 1, H, W)`` or ``(N, H, W)``, values in [0, 1]
        - output: ``()``
    """

    def __init__(self, bce_weight: float = 0.5, smooth: float = DEFAULT_SMOOTH) -> None:
        super().__init__()
        self.bce_weight = float(bce_weight)
        self.smooth = float(smooth)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Compute the loss; see :func:`bce_dice_loss`."""
        return bce_dice_loss(logits, target, bce_weight=self.bce_weight, smooth=self.smooth)

    def extra_repr(self) -> str:
        return f"bce_weight={self.bce_weight}, smooth={self.smooth}"


class CEDiceLoss(nn.Module):
    """Module wrapper of :func:`ce_dice_loss` (multiclass cross-entropy + softmax soft Dice).

    Args:
        ce_weight: weight of the cross-entropy term.
        smooth: Dice smoothing constant.
        include_background: also average the Dice of class 0.

    **Shape:**
        - logits: ``(N, C, H, W)``, C >= 2
        - target: ``(N, H, W)`` or ``(N, 1, H, W)``, integer class indices
        - output: ``()``
    """

    def __init__(
        self, ce_weight: float = 0.5, smooth: float = DEFAULT_SMOOTH, include_background: bool = False
    ) -> None:
        super().__init__()
        self.ce_weight = float(ce_weight)
        self.smooth = float(smooth)
        self.include_background = bool(include_background)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Compute the loss; see :func:`ce_dice_loss`."""
        return ce_dice_loss(
            logits, target, ce_weight=self.ce_weight, smooth=self.smooth, include_background=self.include_background
        )

    def extra_repr(self) -> str:
        return f"ce_weight={self.ce_weight}, smooth={self.smooth}, include_background={self.include_background}"


def _check_binary_inputs(logits: torch.Tensor, target: torch.Tensor, where: str) -> torch.Tensor:
    """Validate ``(N, 1, *spatial)`` logits against a target; return the target with a channel dimension."""
    if not torch.is_floating_point(logits):
        raise ValueError(f"{where}: logits must be floating point; received dtype {logits.dtype}.")
    if logits.ndim < 3 or logits.shape[1] != 1:
        hint = " For C > 1 classes use ce_dice_loss." if logits.ndim >= 3 else ""
        raise ValueError(
            f"{where} expects logits of shape (N, 1, *spatial) (one foreground channel); received "
            f"{tuple(logits.shape)}.{hint}"
        )
    received = tuple(target.shape)
    if target.ndim == logits.ndim - 1:
        target = target.unsqueeze(1)
    if target.shape != logits.shape:
        raise ValueError(
            f"{where}: logits {tuple(logits.shape)} need a target of the same shape (or without the channel "
            f"dimension, {(logits.shape[0], *logits.shape[2:])}); received {received}."
        )
    return target
