"""The retraining pipeline's steps as plain typed functions (the KFP wrappers in :mod:`components.kfp_components`
only move artifacts and parameters in and out of these).

Order: :func:`version_data` → :func:`validate_data` → :func:`train_candidate` → :func:`evaluate_target` (one per
zero-shot target) → :func:`gate_candidate` → :func:`register_candidate_step` (only when the gate passed) and, always,
:func:`record_outcome`. The MLflow run created by the training step is the thread that ties them: every later step
logs into it, and the gate reads the candidate's metrics back from it.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DataValidationError",
    "GateOutput",
    "TrainCandidateOutput",
    "evaluate_target",
    "gate_candidate",
    "log_candidate",
    "record_outcome",
    "resolve_policy",
    "register_candidate_step",
    "train_candidate",
    "train_with_pytorchjob",
    "validate_data",
    "version_data",
]

log = logging.getLogger(__name__)


def resolve_policy(policy: str) -> str:
    """A gate policy path as given, or relative to the project (``policies/gate.yaml`` ships in the image)."""
    p = Path(policy)
    if p.is_file():
        return str(p)
    project = Path(__file__).resolve().parents[1] / policy
    if project.is_file():
        return str(project)
    raise FileNotFoundError(f"gate policy {policy} not found (nor under {project.parent}); pass an existing YAML file")


class DataValidationError(RuntimeError):
    """The dataset failed validation; training must not start. The message names every failing item."""


def version_data(repo: str, path: str, rev: str, out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Materialise the pinned dataset version (git repo/``.dvc`` file + revision) into ``out_dir``, hashes verified.

    Returns:
        ``DatasetVersion`` as a dict (``md5`` is the DVC ``.dir`` hash used for lineage).
    """
    from components.data_version import materialize

    version = materialize(repo or None, path, rev or None, out_dir, overwrite=True)
    log.info("dataset %s@%s → %s (%s, %d files)", repo, rev or "HEAD", out_dir, version.md5, version.n_files)
    return asdict(version)


def validate_data(
    data_dir: str | os.PathLike[str],
    report_dir: str | os.PathLike[str],
    *,
    target_dirs: list[str] | None = None,
    severity_overrides: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Validate the dataset (Great Expectations suite + pairing, decodability, leakage, near-duplicates).

    Writes the report (``summary.json`` and GX data docs) either way.

    Raises:
        DataValidationError: the data failed; the message lists every failing item (file and rule).
    """
    from components.validation import validate_dataset

    targets: list[str | None] = list(target_dirs or []) or [None]
    for target in targets:
        result = validate_dataset(
            data_dir, target_dir=target, report_dir=report_dir, severity_overrides=severity_overrides
        )
        if not result.passed:
            break
    summary = result.to_dict() if hasattr(result, "to_dict") else {"passed": result.passed}
    if not result.passed:
        raise DataValidationError(
            f"dataset {data_dir} failed validation ({len(result.errors)} error(s)); training will not start:\n"
            + "\n".join(f"  - {f}" for f in result.errors)
            + f"\nReport: {report_dir}"
        )
    return summary


@dataclass(frozen=True)
class TrainCandidateOutput:
    """The trained candidate: its checkpoint, MLflow run and headline metrics."""

    run_id: str
    checkpoint: str
    onnx: str
    best_epoch: int
    val_dice: float
    test_metrics: dict[str, float] = field(default_factory=dict)


def train_candidate(
    data_dir: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    *,
    tracking_uri: str,
    experiment: str,
    overrides: dict[str, Any] | None = None,
    config: str | None = None,
    dataset_md5: str = "",
    dataset_source: str = "",
    dataset_name: str = "",
    run_tags: dict[str, str] | None = None,
) -> TrainCandidateOutput:
    """Train in this process with live MLflow logging, then log the candidate (see :func:`log_candidate`).

    A failing run is marked FAILED in MLflow and nothing is registered.
    """
    from components.tracking import MLflowWriter
    from lgmsnet.config import load_config
    from lgmsnet.engine import train

    cfg = load_config(config or None, {**(overrides or {}), "data.path": str(data_dir)})
    tags = {"lgmsnet.dataset.md5": dataset_md5, **(run_tags or {})}
    with MLflowWriter(tracking_uri, experiment, tags=tags, device=cfg.train.device) as writer:
        train(cfg, run_dir, writers=[writer])
        run_id = writer.run_id
    try:
        return log_candidate(run_dir, data_dir, tracking_uri=tracking_uri, run_id=run_id, dataset_md5=dataset_md5,
                             dataset_source=dataset_source, dataset_name=dataset_name)
    except BaseException as exc:
        _mark_failed(tracking_uri, run_id, exc)
        raise


def _mark_failed(tracking_uri: str, run_id: str, exc: BaseException) -> None:
    """A candidate whose logging failed must not look finished: mark its run FAILED with the reason."""
    from components.tracking import bounded_http, client

    try:
        with bounded_http():
            c = client(tracking_uri)
            c.set_tag(run_id, "lgmsnet.error", f"{type(exc).__name__}: {exc}"[:4900])
            c.set_terminated(run_id, status="FAILED")
    except Exception as inner:  # noqa: BLE001 - the original error is what matters
        log.warning("could not mark run %s FAILED: %s", run_id, inner)


def log_candidate(
    run_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    *,
    tracking_uri: str,
    run_id: str = "",
    experiment: str = "lgmsnet-retraining",
    dataset_md5: str = "",
    dataset_source: str = "",
    dataset_name: str = "",
) -> TrainCandidateOutput:
    """Log a finished training run folder to MLflow: artifacts, dataset version, pyfunc model + ONNX, in-domain metrics.

    Used after in-process training and after a PyTorchJob (then ``run_id`` is empty: a run is created and the
    per-epoch metrics are replayed from ``metrics.jsonl``).
    """
    from components.mlflow_model import log_model
    from components.tracking import DatasetVersion, MLflowWriter, log_run_artifacts
    from lgmsnet.checkpoint import load_checkpoint, model_from_checkpoint
    from lgmsnet.export import export_onnx

    run_dir = Path(run_dir)
    best = run_dir / "checkpoints" / "best.pt"
    if not best.is_file():
        raise RuntimeError(f"training produced no best checkpoint in {run_dir}; see its metrics.csv")
    if not run_id:
        with MLflowWriter(tracking_uri, experiment, tags={"lgmsnet.dataset.md5": dataset_md5}) as writer:
            for line in (run_dir / "metrics.jsonl").read_text().splitlines():
                row = json.loads(line)
                writer.log_metrics({k: v for k, v in row.items() if k != "step"}, int(row["step"]))
            run_id = writer.run_id
    ckpt = load_checkpoint(best)
    model = model_from_checkpoint(ckpt)
    image_size = int(ckpt.get("config", {}).get("data", {}).get("image_size", 256))
    onnx = export_onnx(model, run_dir / "model.onnx", image_size).path
    version = DatasetVersion(
        name=dataset_name or Path(str(data_dir)).name,
        source=dataset_source or str(data_dir),
        md5=dataset_md5.removesuffix(".dir") or None,
        fingerprint=ckpt.get("data", {}).get("fingerprint"),
        synthetic=bool(_dataset_yaml(data_dir).get("synthetic", False)),
    )
    log_run_artifacts(run_id, run_dir, tracking_uri=tracking_uri, dataset_version=version)
    log_model(run_id, best, onnx_path=onnx, tracking_uri=tracking_uri)
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").is_file() else {}
    test = {f"in_domain.{k}": float(v) for k, v in (summary.get("test_metrics") or {}).items()
            if k in ("dice", "iou", "sensitivity", "precision", "hd95") and v is not None}
    _log_metrics(tracking_uri, run_id, {**test, "model.parameters": float(sum(p.numel() for p in model.parameters()))})
    return TrainCandidateOutput(
        run_id=run_id, checkpoint=str(best), onnx=str(onnx), best_epoch=int(summary.get("best_epoch", 0)),
        val_dice=float(summary.get("best_val_dice", float("nan"))), test_metrics=test,
    )


def train_with_pytorchjob(
    data_dir: str | os.PathLike[str],
    work_dir: str | os.PathLike[str],
    *,
    job_name: str,
    image: str,
    tracking_uri: str,
    experiment: str,
    overrides: dict[str, Any] | None = None,
    namespace: str = "kubeflow",
    nodes: int = 1,
    nproc_per_node: int = 1,
    gpus_per_node: int = 1,
    volume_claim: str | None = None,
    mount_path: str = "/workspace",
    custom_objects_api: Any = None,
    timeout_s: float = 172800,
    poll_s: float = 30,
    dataset_md5: str = "",
    dataset_source: str = "",
) -> TrainCandidateOutput:
    """Multi-GPU / multi-node training as a Kubeflow PyTorchJob running the same ``torchrun -m lgmsnet.cli train``.

    ``work_dir`` lies on the volume both this launcher pod and the job's pods mount (``volume_claim`` at
    ``mount_path``): the dataset is copied there, the job trains into ``work_dir/run`` (a restarted pod resumes from
    ``last.pt``), and this step waits for the job, then logs the finished run to MLflow (:func:`log_candidate`).
    """
    import shutil

    from components.k8s import pytorchjob_manifest, submit_and_wait

    work = Path(work_dir)
    data, run = work / "data", work / "run"
    if Path(data_dir).resolve() != data.resolve():
        if data.exists():
            shutil.rmtree(data)
        shutil.copytree(data_dir, data)
    args = ["--data", str(data), "--out", str(run)]
    for key, value in (overrides or {}).items():
        args += ["--set", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    manifest = pytorchjob_manifest(
        job_name, image, args, namespace=namespace, nodes=nodes, nproc_per_node=nproc_per_node,
        gpus_per_node=gpus_per_node, volume_claim=volume_claim, mount_path=mount_path,
    )
    if custom_objects_api is None:
        from kubernetes import client, config

        config.load_incluster_config()
        custom_objects_api = client.CustomObjectsApi()
    submit_and_wait(manifest, custom_objects_api=custom_objects_api, timeout_s=timeout_s, poll_s=poll_s)
    return log_candidate(run, data, tracking_uri=tracking_uri, experiment=experiment, dataset_md5=dataset_md5,
                         dataset_source=dataset_source)


def _dataset_yaml(data_dir: str | os.PathLike[str]) -> dict[str, Any]:
    from lgmsnet.data import load_dataset_info

    try:
        return load_dataset_info(data_dir)
    except Exception:  # noqa: BLE001 - provenance is informative
        return {}


def _log_metrics(tracking_uri: str, run_id: str, metrics: dict[str, float]) -> None:
    from components.tracking import bounded_http, client, translate_errors

    with bounded_http(), translate_errors(tracking_uri, f"log metrics to run {run_id}"):
        c = client(tracking_uri)
        ts = int(time.time() * 1000)
        from mlflow.entities import Metric

        c.log_batch(run_id, metrics=[Metric(k, float(v), ts, 0) for k, v in metrics.items() if v == v])


def evaluate_target(
    checkpoint: str | os.PathLike[str],
    name: str,
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    tracking_uri: str,
    run_id: str,
    image_size: int | None = None,
) -> dict[str, Any]:
    """Zero-shot evaluation on one target; logs ``zero_shot.<name>.{dice,iou,hd95}`` and the report to the run."""
    from components.evaluate import evaluate_step
    from components.tracking import bounded_http, client, translate_errors

    out = evaluate_step(checkpoint, data_dir, out_dir, name=name, image_size=image_size)
    if not out.zero_shot:
        log.warning("target %s is the training data: not logged as zero-shot", name)
        return asdict(out)
    metrics = {f"zero_shot.{name}.dice": out.dice, f"zero_shot.{name}.iou": out.iou}
    if out.hd95 is not None:
        metrics[f"zero_shot.{name}.hd95"] = out.hd95
    _log_metrics(tracking_uri, run_id, metrics)
    with bounded_http(), translate_errors(tracking_uri, f"upload the {name} report"):
        client(tracking_uri).log_artifacts(run_id, str(out_dir), artifact_path=f"evaluation/zero-shot/{name}")
    return asdict(out)


@dataclass(frozen=True)
class GateOutput:
    """The gate's verdict on a candidate run."""

    passed: bool
    reasons: list[str]
    metrics: dict[str, float]
    decision: dict[str, Any]


def gate_candidate(
    tracking_uri: str,
    run_id: str,
    model_name: str,
    policy_path: str,
    *,
    checkpoint: str = "",
    image_size: int = 256,
) -> GateOutput:
    """Read the candidate's metrics from its run (+ measured latency), apply the policy against the champion.

    The decision (passed, every failed criterion) is recorded as run tags either way.
    """
    from components.gate import load_policy
    from components.registry import evaluate_candidate, measure_latency_ms
    from components.tracking import bounded_http, client, translate_errors

    policy = load_policy(policy_path)
    with bounded_http(), translate_errors(tracking_uri, f"read run {run_id}"):
        run = client(tracking_uri).get_run(run_id)
    metrics = {k: float(v) for k, v in run.data.metrics.items()
               if k.startswith(("in_domain.", "zero_shot.", "model."))}
    if checkpoint:
        metrics["latency_ms"] = measure_latency_ms(checkpoint, image_size)
        _log_metrics(tracking_uri, run_id, {"latency_ms": metrics["latency_ms"]})
    decision = evaluate_candidate(metrics, model_name, policy, tracking_uri=tracking_uri)
    tags = {"gate.passed": str(decision.passed).lower(), "gate.reasons": "; ".join(decision.reasons)[:4900]}
    with bounded_http(), translate_errors(tracking_uri, f"tag run {run_id}"):
        c = client(tracking_uri)
        for k, v in tags.items():
            c.set_tag(run_id, k, v)
    log.info("gate %s for run %s%s", "PASSED" if decision.passed else "FAILED", run_id,
             "" if decision.passed else ": " + "; ".join(decision.reasons))
    as_dict = decision.to_dict() if hasattr(decision, "to_dict") else {"passed": decision.passed}
    return GateOutput(passed=bool(decision.passed), reasons=list(decision.reasons), metrics=metrics, decision=as_dict)


def register_candidate_step(
    tracking_uri: str,
    run_id: str,
    model_name: str,
    policy_path: str,
    *,
    dataset_md5: str = "",
    dataset_source: str = "",
    dataset_name: str = "",
) -> dict[str, str]:
    """Register a candidate that passed the gate (re-checked here: a stale or forged verdict never registers).

    Returns:
        ``{"name", "version", "alias"}``; ``version`` is empty when the gate failed on re-check.
    """
    from components.gate import load_policy
    from components.registry import evaluate_candidate, register_candidate
    from components.tracking import DatasetVersion, bounded_http, client, translate_errors

    with bounded_http(), translate_errors(tracking_uri, f"read run {run_id}"):
        run = client(tracking_uri).get_run(run_id)
    metrics = {k: float(v) for k, v in run.data.metrics.items()
               if k.startswith(("in_domain.", "zero_shot.", "model.", "latency_ms"))}
    decision = evaluate_candidate(metrics, model_name, load_policy(policy_path), tracking_uri=tracking_uri)
    version = DatasetVersion(
        name=dataset_name or "dataset", source=dataset_source, md5=dataset_md5.removesuffix(".dir") or None,
        fingerprint=None, synthetic=run.data.tags.get("lgmsnet.data.synthetic", "false") == "true",
    )
    mv = register_candidate(tracking_uri, run_id, model_name, decision, metrics, version)
    if mv is None:
        return {"name": model_name, "version": "", "alias": ""}
    return {"name": model_name, "version": str(mv.version), "alias": "challenger"}


def record_outcome(
    out_file: str | os.PathLike[str],
    *,
    state: str,
    error: str = "",
    run_id: str = "",
    notify_url: str = "",
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the pipeline's outcome as JSON (always, from the exit handler) and optionally POST it to a webhook."""
    record = {
        "state": state, "error": error, "mlflow_run_id": run_id,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(details or {}),
    }
    path = Path(out_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, path)
    if notify_url:
        req = urllib.request.Request(notify_url, data=json.dumps(record).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=10).close()  # noqa: S310 - operator-configured URL
        except OSError as exc:
            log.warning("could not notify %s: %s", notify_url, exc)
    return record
