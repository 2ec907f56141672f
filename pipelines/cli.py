"""``lgmsnet pipeline compile | run --local | submit | schedule``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["register_commands", "schedule", "submit"]

log = logging.getLogger(__name__)

COMPILED = Path(__file__).resolve().parent / "retraining.yaml"


def _kv(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if args.params:
        text = Path(args.params).read_text() if Path(args.params).is_file() else args.params
        try:
            params = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--params must be a JSON object or a JSON file, got {args.params!r}: {exc}") from exc
        if not isinstance(params, dict):
            raise ValueError(f"--params must be a JSON object, got {type(params).__name__}")
    for key, value in args.param or []:
        params[key] = _json_or_text(value)
    return params


def _client(host: str, client_factory: Any = None) -> Any:
    if client_factory is not None:
        return client_factory(host=host)
    import kfp

    # credentials: KF_PIPELINES_SA_TOKEN_PATH / existing kube config, never from arguments
    return kfp.Client(host=host)


def _package(args: argparse.Namespace) -> str:
    if getattr(args, "package", None):
        return str(args.package)
    from pipelines.retraining import compile_pipeline

    tmp = Path(tempfile.mkdtemp(prefix="lgmsnet-pipeline-")) / "retraining.yaml"
    compile_pipeline(tmp, _options(args))
    return str(tmp)


def _options(args: argparse.Namespace) -> Any:
    from pipelines.retraining import ClusterOptions

    return ClusterOptions(image=args.image, gpus=args.gpus, pytorchjob_nodes=args.pytorchjob_nodes,
                          pytorchjob_nproc_per_node=args.nproc_per_node)


def submit(args: argparse.Namespace, client_factory: Any = None) -> str:
    """Create one run on a KFP server; returns the run id."""
    client = _client(args.host, client_factory)
    run = client.create_run_from_pipeline_package(
        _package(args), arguments=_params(args), run_name=args.run_name, experiment_name=args.experiment,
        namespace=args.namespace, enable_caching=False,
    )
    run_id = getattr(run, "run_id", str(run))
    print(f"submitted run {run_id} to {args.host}")
    return run_id


def schedule(args: argparse.Namespace, client_factory: Any = None) -> str:
    """Create a recurring run (cron), without catch-up by default; returns the recurring run id."""
    client = _client(args.host, client_factory)
    exp = client.create_experiment(args.experiment, namespace=args.namespace)
    job = client.create_recurring_run(
        experiment_id=exp.experiment_id, job_name=args.job_name, cron_expression=args.cron,
        pipeline_package_path=_package(args), params=_params(args), max_concurrency=1,
        no_catchup=not args.catchup, enable_caching=False,
    )
    job_id = getattr(job, "recurring_run_id", str(job))
    print(f"scheduled {args.job_name!r} ({args.cron}, catch-up {'on' if args.catchup else 'off'}): {job_id}")
    return job_id


def _cmd_compile(args: argparse.Namespace) -> int:
    from pipelines.retraining import compile_pipeline

    out = compile_pipeline(args.out, _options(args))
    print(f"wrote {out}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from pipelines.local import print_summary, run_local

    if not args.local:
        raise ValueError("only --local runs are started here; use `lgmsnet pipeline submit --host URL` for a cluster")
    if args.target and not args.data:
        raise ValueError("--target needs --data (without --data the demo uses synthetic source and target data)")
    res = run_local(
        args.workspace, data=args.data, targets=dict(args.target or []), epochs=args.epochs,
        image_size=args.image_size, gate_policy=args.gate_policy, model_name=args.model_name,
        train_overrides={k: _json_or_text(v) for k, v in (args.set or [])},
    )
    print_summary(res)
    return 0 if res.outcome.get("state") == "SUCCEEDED" else 1


def _add_cluster_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--image", default=os.environ.get("LGMSNET_IMAGE", "ghcr.io/lgmsnet/lgmsnet:0.1.0"))
    s.add_argument("--gpus", type=int, default=1, help="GPUs of the training pod (per node with --pytorchjob-nodes)")
    s.add_argument("--pytorchjob-nodes", type=int, default=0,
                   help="train as a Kubeflow PyTorchJob on this many nodes (0: in the pipeline pod)")
    s.add_argument("--nproc-per-node", type=int, default=1, help="torchrun processes per PyTorchJob node")


def _add_remote_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--host", required=True, help="KFP API endpoint, e.g. https://kubeflow.example.org/pipeline")
    s.add_argument("--package", help="a compiled pipeline YAML (default: compile now with the cluster options)")
    _add_cluster_args(s)
    s.add_argument("--params", help="pipeline arguments as a JSON object or JSON file")
    s.add_argument("--param", action="append", type=_kv, metavar="NAME=VALUE", help="one argument (JSON or text)")
    s.add_argument("--experiment", default="lgmsnet-retraining")
    s.add_argument("--namespace", default=None)


def register_commands(sub: argparse._SubParsersAction) -> None:
    """Add the ``pipeline`` command group."""
    p = sub.add_parser("pipeline", help="compile, run locally, submit or schedule the retraining pipeline")
    ps = p.add_subparsers(dest="pipeline_command", required=True, metavar="PIPELINE_COMMAND")

    s = ps.add_parser("compile", help="compile the pipeline to KFP IR YAML")
    s.add_argument("--out", default=str(COMPILED))
    _add_cluster_args(s)
    s.set_defaults(func=_cmd_compile)

    s = ps.add_parser("run", help="run the pipeline on this machine (kfp.local, offline, CPU)")
    s.add_argument("--local", action="store_true", required=True)
    s.add_argument("--workspace", default="demo")
    s.add_argument("--data", help="a real images/+masks/ folder (default: synthetic data)")
    s.add_argument("--target", action="append", type=_kv, metavar="NAME=DIR", help="zero-shot target (with --data)")
    s.add_argument("--epochs", type=int, default=8)
    s.add_argument("--image-size", type=int, default=128)
    s.add_argument("--gate-policy")
    s.add_argument("--model-name", default="lgmsnet")
    s.add_argument("--set", action="append", type=_kv, metavar="SECTION.KEY=VALUE",
                   help="training setting, e.g. model.name=lgmsnet_tiny")
    s.set_defaults(func=_cmd_run)

    s = ps.add_parser("submit", help="create a run on a Kubeflow Pipelines server")
    _add_remote_args(s)
    s.add_argument("--run-name", default="lgmsnet-retraining")
    s.set_defaults(func=lambda a: (submit(a), 0)[1])

    s = ps.add_parser("schedule", help="create a recurring (cron) run on a Kubeflow Pipelines server")
    _add_remote_args(s)
    s.add_argument("--cron", required=True, help="6-field cron, e.g. '0 0 3 * * 1' (Mondays 03:00)")
    s.add_argument("--job-name", default="lgmsnet-weekly-retraining")
    s.add_argument("--catchup", action="store_true", help="also run the missed intervals (off by default)")
    s.set_defaults(func=lambda a: (schedule(a), 0)[1])
