"""Thin KFP v2 wrappers around :mod:`components.pipeline_steps`: they only move artifacts and parameters.

Each wrapper is a plain function turned into a lightweight Python component by :func:`make_components` with the
project's image as ``base_image`` (no runtime ``pip install``: the image already holds the project). The bodies
import what they use, because KFP ships only the function's source into the container.
"""


from types import SimpleNamespace
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

__all__ = ["DEFAULT_IMAGE", "make_components"]

DEFAULT_IMAGE = "ghcr.io/lgmsnet/lgmsnet:0.1.0"


def version_data_op(repo: str, path: str, rev: str, dataset: Output[Dataset]) -> NamedTuple(
    "VersionOut", [("md5", str), ("source", str)]
):
    """Materialise the pinned dataset version; its DVC ``.dir`` md5 is the lineage key."""
    from collections import namedtuple

    from components.pipeline_steps import version_data

    v = version_data(repo, path, rev, dataset.path)
    dataset.metadata.update({"md5": v["md5"], "n_files": v["n_files"], "git_rev": v["git_rev"], "remote": v["remote"]})
    return namedtuple("VersionOut", ["md5", "source"])(v["md5"], f"{repo}:{path}@{v['git_rev'] or rev or 'HEAD'}")


def validate_data_op(dataset: Input[Dataset], report: Output[HTML], summary: Output[Metrics]) -> None:
    """Great Expectations validation; raises (failing the run before training) when the data does not pass."""
    import json
    import shutil
    import tempfile
    from pathlib import Path

    from components.pipeline_steps import validate_data

    report_dir = Path(tempfile.mkdtemp(prefix="gx-report-"))
    try:
        validate_data(dataset.path, report_dir)  # raises DataValidationError: the run stops before training
    finally:
        index = next(report_dir.rglob("index.html"), None)
        if index is not None:
            shutil.copyfile(index, report.path)
        if (report_dir / "summary.json").is_file():
            s = json.loads((report_dir / "summary.json").read_text())
            summary.log_metric("n_items", float(s.get("n_items", 0)))
            summary.log_metric("n_errors", float(len(s.get("errors", []))))
            summary.log_metric("n_warnings", float(len(s.get("warnings", []))))


def train_op(
    dataset: Input[Dataset],
    dataset_md5: str,
    dataset_source: str,
    tracking_uri: str,
    experiment: str,
    train_overrides: dict,
    model: Output[Model],
    metrics: Output[Metrics],
) -> NamedTuple("TrainOut", [("run_id", str), ("val_dice", float)]):
    """Train the candidate and log run + model to MLflow; the checkpoint and ONNX go to the Model artifact."""
    from collections import namedtuple
    from pathlib import Path

    from components.pipeline_steps import train_candidate

    run_dir = Path(model.path)
    out = train_candidate(
        dataset.path, run_dir, tracking_uri=tracking_uri, experiment=experiment, overrides=train_overrides,
        dataset_md5=dataset_md5, dataset_source=dataset_source,
    )
    model.metadata.update({"mlflow_run_id": out.run_id, "best_epoch": out.best_epoch, "framework": "pytorch"})
    metrics.log_metric("val_dice", out.val_dice)
    for k, v in out.test_metrics.items():
        metrics.log_metric(k, v)
    return namedtuple("TrainOut", ["run_id", "val_dice"])(out.run_id, out.val_dice)


def train_pytorchjob_op(
    dataset: Input[Dataset],
    dataset_md5: str,
    dataset_source: str,
    tracking_uri: str,
    experiment: str,
    train_overrides: dict,
    job_id: str,
    image: str,
    nodes: int,
    nproc_per_node: int,
    gpus_per_node: int,
    volume_claim: str,
    namespace: str,
    model: Output[Model],
    metrics: Output[Metrics],
) -> NamedTuple("TrainOut", [("run_id", str), ("val_dice", float)]):
    """Train as a Kubeflow PyTorchJob (same ``torchrun -m lgmsnet.cli train``), wait, then log the run to MLflow."""
    import shutil
    from collections import namedtuple
    from pathlib import Path

    from components.pipeline_steps import train_with_pytorchjob

    work = Path("/workspace") / f"lgmsnet-{job_id}"
    out = train_with_pytorchjob(
        dataset.path, work, job_name=f"lgmsnet-{job_id}"[:63].rstrip("-"), image=image, tracking_uri=tracking_uri,
        experiment=experiment, overrides=train_overrides, namespace=namespace, nodes=nodes,
        nproc_per_node=nproc_per_node, gpus_per_node=gpus_per_node, volume_claim=volume_claim,
        mount_path="/workspace", dataset_md5=dataset_md5, dataset_source=dataset_source,
    )
    shutil.copytree(work / "run", model.path, dirs_exist_ok=True)
    model.metadata.update({"mlflow_run_id": out.run_id, "best_epoch": out.best_epoch, "framework": "pytorch",
                           "pytorchjob": f"lgmsnet-{job_id}"})
    metrics.log_metric("val_dice", out.val_dice)
    return namedtuple("TrainOut", ["run_id", "val_dice"])(out.run_id, out.val_dice)


def evaluate_op(model: Input[Model], target: dict, tracking_uri: str, metrics: Output[Metrics]) -> float:
    """Zero-shot evaluation on one target dataset version (``target = {name, repo, path, rev}``).

    The candidate's MLflow run id travels in the Model artifact's metadata (not as a parameter: kfp.local's
    ParallelFor substitutes the loop item for task-output parameters inside the loop).
    """
    import tempfile
    from pathlib import Path

    from components.pipeline_steps import evaluate_target, version_data

    work = Path(tempfile.mkdtemp(prefix="zero-shot-"))
    version_data(target.get("repo", ""), target.get("path", "data"), target.get("rev", ""), work / "data")
    out = evaluate_target(
        str(Path(model.path) / "checkpoints" / "best.pt"), target["name"], work / "data", work / "report",
        tracking_uri=tracking_uri, run_id=model.metadata["mlflow_run_id"],
    )
    metrics.log_metric(f"zero_shot.{target['name']}.dice", out["dice"])
    metrics.log_metric(f"zero_shot.{target['name']}.iou", out["iou"])
    return float(out["dice"])


def gate_op(
    model: Input[Model], tracking_uri: str, run_id: str, model_name: str, gate_policy: str, decision: Output[Markdown]
) -> bool:
    """Apply the versioned gate policy to the candidate's metrics (and the champion's); never registers.

    Returns only the verdict (the reasons are in the ``decision`` artifact and the run's tags): kfp.local evaluates
    ``dsl.If`` conditions on a single output but not on a NamedTuple field.
    """
    from pathlib import Path

    from components.pipeline_steps import gate_candidate, resolve_policy

    out = gate_candidate(tracking_uri, run_id, model_name, resolve_policy(gate_policy),
                         checkpoint=str(Path(model.path) / "checkpoints" / "best.pt"))
    lines = [f"# Gate: {'PASSED' if out.passed else 'FAILED'}", ""] + [f"- {r}" for r in out.reasons]
    lines += ["", "| metric | value |", "|---|---|"] + [f"| {k} | {v:.4g} |" for k, v in sorted(out.metrics.items())]
    Path(decision.path).write_text("\n".join(lines) + "\n")
    return out.passed


def register_op(
    tracking_uri: str, run_id: str, model_name: str, gate_policy: str, dataset_md5: str, dataset_source: str
) -> str:
    """Register the gated candidate as a new version with alias ``challenger`` (idempotent per run)."""
    from components.pipeline_steps import register_candidate_step, resolve_policy

    out = register_candidate_step(tracking_uri, run_id, model_name, resolve_policy(gate_policy),
                                  dataset_md5=dataset_md5, dataset_source=dataset_source)
    return out["version"]


def outcome_op(status: dsl.PipelineTaskFinalStatus, outcome_file: str, notify_url: str) -> None:
    """Exit handler: always record how the run ended (and notify, when a webhook is configured)."""
    from components.pipeline_steps import record_outcome

    record_outcome(
        outcome_file or "/tmp/lgmsnet-outcome.json",
        state=str(status.state),
        error=str(getattr(status, "error_message", "") or ""),
        notify_url=notify_url,
        details={"pipeline_job": str(getattr(status, "pipeline_job_resource_name", "") or ""),
                 "failed_task": str(getattr(status, "pipeline_task_name", "") or "")},
    )


def make_components(image: str = DEFAULT_IMAGE) -> SimpleNamespace:
    """Build the KFP components with ``image`` as their base image."""
    wrap = dsl.component(base_image=image, install_kfp_package=False)  # the image already has kfp
    return SimpleNamespace(
        version_data=wrap(version_data_op),
        validate_data=wrap(validate_data_op),
        train=wrap(train_op),
        train_pytorchjob=wrap(train_pytorchjob_op),
        evaluate=wrap(evaluate_op),
        gate=wrap(gate_op),
        register=wrap(register_op),
        outcome=wrap(outcome_op),
    )
