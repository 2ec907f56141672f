"""Pipeline step: evaluate a checkpoint in-domain (test split) or zero-shot on one target dataset."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["EvalOutput", "evaluate_step"]


@dataclass(frozen=True)
class EvalOutput:
    """Headline metrics of one evaluation (per-image means) and where the full report lies."""

    name: str
    n_images: int
    dice: float
    iou: float
    hd95: float | None
    zero_shot: bool
    report_dir: str
    metrics: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def evaluate_step(
    checkpoint: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    name: str = "",
    split: str | None = None,
    manifest: str | os.PathLike[str] | None = None,
    image_size: int | None = None,
) -> EvalOutput:
    """Evaluate ``checkpoint`` on ``data_dir`` (one zero-shot target, or a split of the training data).

    Zero-shot targets are evaluated at their native resolution (resized in and out at the training size); a target
    with the training data's fingerprint is reported with ``zero_shot=False``.
    """
    from lgmsnet.evaluation import evaluate, zero_shot

    name = name or Path(data_dir).name
    if split:
        res = evaluate(checkpoint, data_dir, out_dir, split=split, manifest=manifest, image_size=image_size)
        block = res.report["metrics"]
        n, is_zero_shot, report_dir = res.n_images, False, str(res.out_dir)
    else:
        summary = zero_shot(checkpoint, {name: data_dir}, out_dir, image_size=image_size)
        (target,) = summary["targets"]
        block, n, is_zero_shot, report_dir = target["metrics"], target["n_images"], target["zero_shot"], target["out_dir"]
    hd = block.get("hd95", {}).get("mean")
    return EvalOutput(
        name=name,
        n_images=int(n),
        dice=float(block["dice"]["mean"]),
        iou=float(block["iou"]["mean"]),
        hd95=None if hd is None else float(hd),
        zero_shot=bool(is_zero_shot),
        report_dir=report_dir,
        metrics=block,
    )
