"""Run the retraining pipeline locally with ``kfp.local`` — the README's ``make demo``.

Offline and on CPU: the workspace gets a git + DVC data repository with a local directory remote, a SQLite MLflow
store with local artifacts, and the pipeline runs with :class:`kfp.local.SubprocessRunner` in this Python
environment. Without ``data``, the datasets are SYNTHETIC (lesion-like blobs in a "source" and a "target" style,
labelled synthetic in their ``dataset.yaml``); with ``data`` (and ``targets``), real folders are imported and
versioned the same way.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["LocalRunResult", "run_local"]

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]


@dataclass
class LocalRunResult:
    """Where a local run left its results."""

    workspace: Path
    tracking_uri: str
    model_name: str
    outcome: dict[str, Any]
    status: Any
    gate: dict[str, str]


def _prepare_data(ws: Path, data: str | None, targets: Mapping[str, str], size: int) -> tuple[Path, list[dict[str, str]]]:
    from components.data_version import init_data_repo, push_dataset
    from lgmsnet.data import synthesize
    from lgmsnet.data.importers import import_folder

    repo = ws / "data-repo"
    remote = ws / "dvc-remote"
    repo.mkdir(parents=True, exist_ok=True)
    # its own git repository, even when the workspace lies inside a project checkout
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main", str(repo)], check=True)
    init_data_repo(repo, str(remote))
    if data is None:
        synthesize(repo / "data", 120, "source", seed=0, size=size, overwrite=True)
        targets = {"synthetic-target": ""}
        synthesize(repo / "targets" / "synthetic-target", 40, "target", seed=1, size=size, overwrite=True)
    else:
        import_folder(data, repo / "data", overwrite=True)
        for name, path in targets.items():
            import_folder(path, repo / "targets" / name, overwrite=True)
    push_dataset(repo, "data", message="training data")
    out = []
    for name in targets:
        push_dataset(repo, f"targets/{name}", message=f"zero-shot target {name}")
        out.append({"name": name, "repo": str(repo), "path": f"targets/{name}", "rev": ""})
    return repo, out


def run_local(
    workspace: str | os.PathLike[str] = "demo",
    *,
    data: str | None = None,
    targets: Mapping[str, str] | None = None,
    epochs: int = 8,
    image_size: int = 128,
    gate_policy: str | None = None,
    model_name: str = "lgmsnet",
    train_overrides: Mapping[str, Any] | None = None,
    fresh: bool = True,
) -> LocalRunResult:
    """Version the data, run the whole pipeline with ``kfp.local``, and return where to look.

    Args:
        workspace: folder for the data repo, DVC remote, MLflow store and KFP outputs (replaced when ``fresh``).
        data: a real images/ + masks/ folder to train on; None = synthetic source data.
        targets: ``{name: folder}`` zero-shot targets (with ``data``); synthetic target when ``data`` is None.
        epochs, image_size: the CPU training budget.
        gate_policy: policy YAML (default: ``policies/gate-demo.yaml`` for synthetic data, else ``policies/gate.yaml``).
        model_name: registered model name.
        train_overrides: extra ``section.key`` settings for training.
        fresh: start from an empty workspace.
    """
    from kfp import local

    from components.registry import status
    from pipelines.retraining import build_pipeline

    ws = Path(workspace).resolve()
    if fresh and ws.exists():
        shutil.rmtree(ws)
    ws.mkdir(parents=True, exist_ok=True)
    repo, target_specs = _prepare_data(ws, data, dict(targets or {}), image_size)
    tracking_uri = f"sqlite:///{ws / 'mlflow' / 'mlflow.db'}"
    (ws / "mlflow").mkdir(exist_ok=True)
    policy = gate_policy or str(REPO / "policies" / ("gate-demo.yaml" if data is None else "gate.yaml"))
    overrides = {
        "train.epochs": epochs, "data.image_size": image_size, "train.batch_size": 8, "optim.lr": 0.05,
        # colour/affine/elastic augmentation: what lets a model trained on one domain transfer to another
        "data.recipe": "kvasir",
        "data.cache_dir": str(ws / "cache"), **dict(train_overrides or {}),
    }
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(ws / "kfp"), raise_on_error=False)
    pipeline = build_pipeline()
    outcome_file = ws / "outcome.json"
    log.info("running the retraining pipeline locally (kfp.local) in %s", ws)
    pipeline(
        data_repo=str(repo), data_path="data", data_rev="", zero_shot_targets=target_specs,
        train_overrides=overrides, gate_policy=policy, mlflow_tracking_uri=tracking_uri,
        experiment="lgmsnet-local", model_name=model_name, outcome_file=str(outcome_file),
    )
    outcome = json.loads(outcome_file.read_text()) if outcome_file.is_file() else {"state": "UNKNOWN"}
    try:
        st = status(model_name, tracking_uri=tracking_uri)
    except Exception as exc:  # noqa: BLE001 - no model registered yet is a valid outcome
        st = f"no registered model {model_name!r} ({exc})"
    return LocalRunResult(workspace=ws, tracking_uri=tracking_uri, model_name=model_name, outcome=outcome, status=st,
                          gate=_last_gate(tracking_uri, "lgmsnet-local"))


def _last_gate(tracking_uri: str, experiment: str) -> dict[str, str]:
    """The gate tags of the experiment's latest run (empty when no run got that far)."""
    from components.tracking import client

    c = client(tracking_uri)
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        return {}
    runs = c.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        return {}
    tags = runs[0].data.tags
    return {"run_id": runs[0].info.run_id, "passed": tags.get("gate.passed", ""), "reasons": tags.get("gate.reasons", "")}


def print_summary(res: LocalRunResult, out: Any = sys.stdout) -> None:
    """Tell the user where to look."""
    st = res.status
    champion = getattr(st, "champion", None)
    challenger = getattr(st, "challenger", None)
    lines = [
        "",
        f"Pipeline finished: {res.outcome.get('state')}" + (f" — {res.outcome.get('error')}" if res.outcome.get("error") else ""),
        f"  workspace:        {res.workspace}",
        f"  quality gate:     {'PASSED' if res.gate.get('passed') == 'true' else 'FAILED' if res.gate.get('passed') else 'not reached'}"
        + (f" — {res.gate['reasons']}" if res.gate.get("reasons") not in (None, "", "[]") else "")
        + (f" (MLflow run {res.gate['run_id']})" if res.gate.get("run_id") else ""),
        f"  registered model: {res.model_name}  challenger={getattr(challenger, 'version', challenger)}  "
        f"champion={getattr(champion, 'version', champion)}" if not isinstance(st, str) else f"  registry: {st}",
        f"  KFP outputs:      {res.workspace / 'kfp'} (validation report, model, metrics, gate decision)",
        f"  MLflow UI:        mlflow ui --backend-store-uri {res.tracking_uri}",
        f"  review, approve:  lgmsnet registry status {res.model_name} --tracking-uri {res.tracking_uri}\n"
        f"                    lgmsnet registry promote {res.model_name} "
        f"{getattr(challenger, 'version', None) or 'VERSION'} --approver YOU --reason '...' "
        f"--tracking-uri {res.tracking_uri}",
    ]
    print("\n".join(lines), file=out)
