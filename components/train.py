"""Pipeline step: train LGMSNet on a materialised dataset version (pure function; the KFP wrapper moves artifacts)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TrainOutput", "train_step"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOutput:
    """What the training step produced."""

    run_dir: str
    best_checkpoint: str
    best_epoch: int
    val_dice: float
    test_metrics: dict[str, float] = field(default_factory=dict)
    data_fingerprint: str = ""
    mlflow_run_id: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def train_step(
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    config: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
    resume: bool = False,
    tracking_uri: str = "",
    experiment: str = "lgmsnet",
    run_tags: dict[str, str] | None = None,
) -> TrainOutput:
    """Train with the engine (:func:`lgmsnet.engine.train`), optionally logging to MLflow.

    Args:
        data_dir: dataset folder (images/ + masks/), e.g. the output of the data-version step.
        out_dir: run folder (checkpoints, metrics, splits, resolved config).
        config: YAML training config; ``overrides`` (``{"train.epochs": 3}``) win over it.
        resume: continue ``out_dir`` after an interruption (a pod restart).
        tracking_uri: MLflow tracking URI; empty = no MLflow logging.
        experiment: MLflow experiment name.
        run_tags: extra MLflow run tags (dataset version, pipeline run id, ...).

    Raises:
        ConfigError, DatasetError, TrainingDivergedError: from the engine; the MLflow run is then marked FAILED.
    """
    from lgmsnet.config import load_config
    from lgmsnet.engine import train

    cfg = load_config(config, {**(overrides or {}), "data.path": str(data_dir)})
    writers: list[Any] = []
    writer = None
    if tracking_uri:
        from components.tracking import MLflowWriter  # MLOps layer, imported at the point of use

        writer = MLflowWriter(tracking_uri, experiment, tags=run_tags or {})
        writers.append(writer)
    try:
        res = train(cfg, out_dir, resume=resume, writers=writers)
    except BaseException:
        if writer is not None and hasattr(writer, "fail"):
            writer.fail()
        raise
    ckpt_data: dict[str, Any] = {}
    if res.best_checkpoint.is_file():
        from lgmsnet.checkpoint import load_checkpoint

        ckpt_data = load_checkpoint(res.best_checkpoint).get("data", {})
    return TrainOutput(
        run_dir=str(Path(out_dir)),
        best_checkpoint=str(res.best_checkpoint),
        best_epoch=res.best_epoch + 1,
        val_dice=float(res.best_val_dice),
        test_metrics={k: float(v) for k, v in (res.test_metrics or {}).items()},
        data_fingerprint=str(ckpt_data.get("fingerprint", "")),
        mlflow_run_id=getattr(writer, "run_id", "") or "",
    )
