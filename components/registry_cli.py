"""``lgmsnet registry ...``: the reviewer's command line over :mod:`components.registry`.

Wire it into the ``lgmsnet`` entry point as an extension: ``lgmsnet.cli.main(argv, extensions=[register_commands])``.
Commands (all take ``--tracking-uri``, default ``$MLFLOW_TRACKING_URI`` else ``./mlflow.db``)::

    lgmsnet registry status NAME [--json]
    lgmsnet registry promote NAME VERSION --approver WHO --reason WHY [--expect-champion V|none]
    lgmsnet registry rollback NAME --approver WHO --reason WHY
    lgmsnet registry gate --policy policies/gate.yaml METRIC SOURCES [--name NAME | --champion-metrics FILE]
    lgmsnet registry log-model --run-id RUN --checkpoint best.pt [--onnx model.onnx]
    lgmsnet registry register --run-id RUN --name NAME --policy policies/gate.yaml METRIC SOURCES
                              [--dataset-dvc data.dvc | --dataset-dir DIR]

METRIC SOURCES (combined): ``--metrics FILE`` (flat JSON ``{name: value}``), ``--in-domain metrics.json`` (from
``lgmsnet evaluate``), ``--zero-shot summary.json`` (from ``lgmsnet zero-shot``), ``--checkpoint best.pt`` (adds
``model.parameters`` and a measured ``latency_ms`` unless ``--no-latency``).

Exit status: 0 success; 1 refused or failed (gate failed, candidate not registered, promotion refused, server
unreachable: the message says why); 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["register_commands"]

log = logging.getLogger(__name__)

_Handler = Callable[[argparse.Namespace], int]


def _settings(args: argparse.Namespace) -> Any:
    from components.tracking import TrackingSettings

    return TrackingSettings(max_retries=args.max_retries, timeout_s=args.timeout)


def _read_json(path: str, what: str) -> Any:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{what} {file} does not exist.")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} {file} is not valid JSON: {exc}") from exc


def _metrics(args: argparse.Namespace) -> dict[str, float]:
    from components.gate import metrics_from_reports

    flat: dict[str, float] = {}
    if args.metrics:
        data = _read_json(args.metrics, "--metrics file")
        if not isinstance(data, Mapping):
            raise ValueError(f"--metrics {args.metrics} must hold a JSON object {{name: number}}.")
        flat = {str(k): float(v) for k, v in data.items()}
    n_params = latency = None
    if args.checkpoint:
        from lgmsnet.checkpoint import model_from_checkpoint

        n_params = sum(p.numel() for p in model_from_checkpoint(args.checkpoint).parameters())
        if not args.no_latency:
            from components.registry import measure_latency_ms

            latency = measure_latency_ms(args.checkpoint, args.latency_size)
    metrics = metrics_from_reports(
        _read_json(args.in_domain, "--in-domain report") if args.in_domain else None,
        _read_json(args.zero_shot, "--zero-shot summary") if args.zero_shot else None,
        n_parameters=n_params, latency_ms=latency, extra=flat,
    )
    if not metrics:
        raise ValueError("no metrics given: pass --metrics, --in-domain, --zero-shot and/or --checkpoint.")
    return metrics


def _decision(args: argparse.Namespace, metrics: Mapping[str, float], name: str | None) -> Any:
    from components.gate import decide, load_policy
    from components.registry import champion_metrics

    policy = load_policy(args.policy)
    if getattr(args, "champion_metrics", None):
        champion = {str(k): float(v) for k, v in _read_json(args.champion_metrics, "--champion-metrics").items()}
    elif name:
        champion = champion_metrics(name, tracking_uri=args.tracking_uri, settings=_settings(args))
    else:
        champion = None
    return decide(metrics, champion, policy)


def _print_decision(decision: Any, as_json: bool) -> None:
    from components.gate import format_checks

    if as_json:
        print(json.dumps(decision.to_dict(), indent=1))
    else:
        print(format_checks(decision.checks))
        print(decision.message)


def _cmd_status(args: argparse.Namespace) -> int:
    from components.registry import status

    st = status(args.name, tracking_uri=args.tracking_uri, settings=_settings(args))
    print(json.dumps(st.to_dict(), indent=1) if args.json else st.format())
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    from components.registry import UNCHECKED, promote

    expected: Any = UNCHECKED
    if args.expect_champion is not None:
        expected = None if args.expect_champion.lower() == "none" else args.expect_champion
    rec = promote(args.name, args.version, args.approver, args.reason, tracking_uri=args.tracking_uri,
                  expected_champion=expected, settings=_settings(args))
    if rec.changed:
        print(f"{rec.name}: champion {rec.previous or 'none'} -> {rec.version} "
              f"(approved by {rec.approver}; #{rec.seq})")
    else:
        print(f"{rec.name}: version {rec.version} already is the champion; nothing changed")
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from components.registry import rollback

    rec = rollback(args.name, approver=args.approver, reason=args.reason, tracking_uri=args.tracking_uri,
                   settings=_settings(args))
    print(f"{rec.name}: champion rolled back {rec.previous} -> {rec.version} (by {rec.approver}; #{rec.seq})")
    return 0


def _cmd_gate(args: argparse.Namespace) -> int:
    decision = _decision(args, _metrics(args), args.name)
    _print_decision(decision, args.json)
    return 0 if decision.passed else 1


def _cmd_log_model(args: argparse.Namespace) -> int:
    from components.mlflow_model import log_model

    res = log_model(args.run_id, args.checkpoint, args.onnx, args.artifact_name, tracking_uri=args.tracking_uri,
                    settings=_settings(args))
    print(f"logged {res.model_uri} to run {res.run_id}" + (" (with ONNX)" if res.onnx_logged else ""))
    return 0


def _cmd_register(args: argparse.Namespace) -> int:
    from components.registry import register_candidate
    from components.tracking import DatasetVersion

    dataset = None
    if args.dataset_dvc:
        dataset = DatasetVersion.from_dvc(args.dataset_dvc, name=args.dataset_name, source=args.dataset_source)
    elif args.dataset_dir:
        dataset = DatasetVersion.from_folder(args.dataset_dir, name=args.dataset_name, source=args.dataset_source)
    metrics = _metrics(args)
    decision = _decision(args, metrics, args.name)
    _print_decision(decision, False)
    mv = register_candidate(args.tracking_uri, args.run_id, args.name, decision, metrics, dataset,
                            settings=_settings(args))
    if mv is None:
        print(f"run {args.run_id} NOT registered as {args.name}: the gate failed (reasons tagged on the run)",
              file=sys.stderr)
        return 1
    print(f"registered run {args.run_id} as {args.name} version {mv.version} (alias challenger)")
    return 0


def _guard(handler: _Handler) -> _Handler:
    """Turn raw MLflow errors into RuntimeError so the entry point prints one line and exits 1."""

    def run(args: argparse.Namespace) -> int:
        from mlflow.exceptions import MlflowException

        try:
            return handler(args)
        except MlflowException as exc:
            raise RuntimeError(f"MLflow refused the request: {exc.message}") from exc

    return run


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)")
    p.add_argument("--max-retries", type=int, default=2, help="HTTP retries per request (bounded; default 2)")
    p.add_argument("--timeout", type=int, default=30, help="HTTP timeout per request in seconds (default 30)")


def _metric_sources(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", required=True, help="gate policy YAML (policies/gate.yaml)")
    p.add_argument("--metrics", help="flat JSON {metric: value}")
    p.add_argument("--in-domain", help="metrics.json of `lgmsnet evaluate` on the in-domain test split")
    p.add_argument("--zero-shot", help="summary.json of `lgmsnet zero-shot`")
    p.add_argument("--checkpoint", help="checkpoint: adds model.parameters and latency_ms")
    p.add_argument("--no-latency", action="store_true", help="do not measure latency_ms from --checkpoint")
    p.add_argument("--latency-size", type=int, default=256, help="image size of the latency measurement")


def register_commands(subparsers: argparse._SubParsersAction,
                      groups: Mapping[str, argparse._SubParsersAction] | None = None) -> None:
    """Add the ``registry`` command group (usable as an ``lgmsnet.cli.main`` extension).

    Args:
        subparsers: the top-level sub-parsers of the ``lgmsnet`` parser.
        groups: existing command groups (unused; part of the extension signature).
    """
    r = subparsers.add_parser("registry", help="governed model registry: status, gate, register, promote, rollback",
                              description="Reviewer workflow: status -> promote/rollback. See docs/registry.md.")
    sub = r.add_subparsers(dest="registry_command", required=True, metavar="REGISTRY_COMMAND")

    s = sub.add_parser("status", help="champion, challenger, versions and promotion history")
    s.add_argument("name", help="registered model name")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    _common(s)
    s.set_defaults(func=_guard(_cmd_status))

    s = sub.add_parser("promote", help="move the champion alias to a gated version (records the approval)")
    s.add_argument("name")
    s.add_argument("version")
    s.add_argument("--approver", required=True, help="who approves (recorded)")
    s.add_argument("--reason", required=True, help="why (recorded)")
    s.add_argument("--expect-champion", help="fail unless the current champion is this version ('none' for none)")
    _common(s)
    s.set_defaults(func=_guard(_cmd_promote))

    s = sub.add_parser("rollback", help="return the champion alias to the version it replaced")
    s.add_argument("name")
    s.add_argument("--approver", required=True)
    s.add_argument("--reason", required=True)
    _common(s)
    s.set_defaults(func=_guard(_cmd_rollback))

    s = sub.add_parser("gate", help="apply the gate policy to candidate metrics (exit 1 when it fails)")
    _metric_sources(s)
    s.add_argument("--name", help="compare with the current champion of this registered model")
    s.add_argument("--champion-metrics", help="or: the champion's metrics as flat JSON")
    s.add_argument("--json", action="store_true")
    _common(s)
    s.set_defaults(func=_guard(_cmd_gate))

    s = sub.add_parser("log-model", help="log a checkpoint to a run as a pyfunc model (+ ONNX)")
    s.add_argument("--run-id", required=True)
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--onnx", help="ONNX export of the same weights (lgmsnet export)")
    s.add_argument("--artifact-name", default="model")
    _common(s)
    s.set_defaults(func=_guard(_cmd_log_model))

    s = sub.add_parser("register", help="gate a run's metrics and register it (alias challenger) if it passes")
    s.add_argument("--run-id", required=True)
    s.add_argument("--name", required=True, help="registered model name")
    _metric_sources(s)
    s.add_argument("--dataset-dvc", help=".dvc file of the training data (its md5 is the data version)")
    s.add_argument("--dataset-dir", help="or: the training data folder (content fingerprint)")
    s.add_argument("--dataset-name", help="dataset name (default: from the .dvc out / folder name)")
    s.add_argument("--dataset-source", help="where the data lives (default: DVC remote URL or folder path)")
    _common(s)
    s.set_defaults(func=_guard(_cmd_register))
