"""``lgmsnet serve manifest``: write the KServe InferenceService for a registered model's alias.

Usage::

    lgmsnet serve manifest --name MODEL [--alias champion] [--format mlflow|onnx] [--tracking-uri URI]
                           [--out FILE] [--namespace NS] [--cpu 2] [--memory 4Gi] [--gpus 0]
                           [--isvc-name NAME] [--service-account SA] [--runtime RUNTIME]
                           [--min-replicas 1] [--max-replicas 1] [--node-selector KEY=VALUE ...]
                           [--toleration KEY ...] [--onnx-artifact PATH] [--artifacts-destination URI]
                           [--storage-uri URI]

It resolves ``MODEL@ALIAS`` in the MLflow registry (:func:`components.serve.resolve_model`), builds the
manifest (:func:`components.serve.inference_service_manifest`), validates it against the kserve SDK (with a
warning, and the project's own checks only, where ``kserve`` is not installed) and writes
YAML to ``--out`` or stdout (``lgmsnet serve manifest --name lgmsnet | kubectl apply -f -``); the summary goes to
stderr. ``--storage-uri`` skips the registry lookup. Exit status 0, or 1 with one message naming the problem.
Wire it in with :func:`register_commands` on the top-level subparsers.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["register_commands"]

log = logging.getLogger(__name__)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. lgmsnet.io/node-pool=gpu), got {text!r}")
    return key.strip(), value.strip()


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from exc
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _cmd_manifest(args: argparse.Namespace) -> int:
    from components.k8s import ManifestError, dump_yaml, sdk_available
    from components.serve import (
        ResolvedModel,
        ServeError,
        inference_service_manifest,
        isvc_name,
        resolve_model,
        validate_inference_service,
    )
    from components.tracking import TrackingError

    try:
        if args.storage_uri:
            resolved = None
            storage_uri = args.storage_uri
        else:
            resolved = resolve_model(args.tracking_uri, args.name, args.alias, args.format,
                                     onnx_artifact=args.onnx_artifact,
                                     artifacts_destination=args.artifacts_destination)
            storage_uri = resolved.storage_uri
        labels = {"lgmsnet.io/registered-model": isvc_name(args.name)}
        if isinstance(resolved, ResolvedModel):
            labels.update({"lgmsnet.io/model-version": resolved.version, "lgmsnet.io/alias": resolved.alias})
        manifest = inference_service_manifest(
            args.isvc_name or isvc_name(args.name),
            storage_uri,
            model_format=args.format,
            namespace=args.namespace,
            cpu=args.cpu,
            memory=args.memory,
            gpus=args.gpus,
            service_account=args.service_account,
            min_replicas=args.min_replicas,
            max_replicas=args.max_replicas,
            runtime=args.runtime,
            node_selector=dict(args.node_selector or []) or None,
            tolerations=[{"key": k, "operator": "Exists", "effect": "NoSchedule"} for k in args.toleration or []]
            or None,
            labels=labels,
        )
        sdk = sdk_available("kserve")
        if not sdk:
            log.warning("the kserve SDK is not installed (pip install 'kserve==0.21.0'): the manifest was checked "
                        "by lgmsnet's own rules only")
        validate_inference_service(manifest, sdk=sdk)
    except (ServeError, ManifestError, TrackingError) as exc:
        print(f"lgmsnet serve manifest: error: {exc}", file=sys.stderr)
        return 1
    text = dump_yaml(manifest)
    meta = manifest["metadata"]
    what = (f"{resolved.name} version {resolved.version} (alias {resolved.alias})" if resolved is not None
            else storage_uri)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}: InferenceService {meta['namespace']}/{meta['name']} serving {what} "
              f"({args.format}, storageUri {storage_uri}); apply with: kubectl apply -f {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
        print(f"InferenceService {meta['namespace']}/{meta['name']} serving {what} ({args.format})", file=sys.stderr)
    return 0


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` command group (``serve manifest``) to the top-level ``lgmsnet`` subparsers.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers()``.
    """
    from components.serve import DEFAULT_ALIAS, DEFAULT_ONNX_ARTIFACT, MODEL_FORMATS

    serve = subparsers.add_parser("serve", help="serving on KServe (InferenceService manifests)")
    ssub = serve.add_subparsers(dest="serve_command", required=True, metavar="SERVE_COMMAND")
    s = ssub.add_parser(
        "manifest",
        help="write the KServe InferenceService for a registered model's alias (YAML for kubectl apply)",
        description="Resolve NAME@ALIAS in the MLflow registry, build and validate a serving.kserve.io/v1beta1 "
        "InferenceService, write it as YAML to --out or stdout.",
    )
    s.add_argument("--name", required=True, help="registered model name (MLflow registry)")
    s.add_argument("--alias", default=DEFAULT_ALIAS, help=f"registry alias to serve (default {DEFAULT_ALIAS})")
    s.add_argument("--format", choices=MODEL_FORMATS, default="mlflow",
                   help="mlflow: the MLflow model folder; onnx: the ONNX export inside it (default mlflow)")
    s.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, then ./mlflow.db)")
    s.add_argument("--out", metavar="FILE", help="YAML file to write (default: stdout)")
    s.add_argument("--namespace", default="kserve", help="namespace of the InferenceService (default kserve)")
    s.add_argument("--cpu", default="2", help="CPU request and limit (default 2)")
    s.add_argument("--memory", default="4Gi", help="memory request and limit (default 4Gi)")
    s.add_argument("--gpus", type=_non_negative_int, default=0, help="nvidia.com/gpu limit (default 0)")
    s.add_argument("--isvc-name", help="InferenceService name (default: derived from --name)")
    s.add_argument("--service-account", help="predictor service account (object-store credentials)")
    s.add_argument("--runtime", help="ServingRuntime to pin (e.g. one built on the project image for mlflow)")
    s.add_argument("--min-replicas", type=_non_negative_int, default=1, help="default 1 (0: scale to zero)")
    s.add_argument("--max-replicas", type=_non_negative_int, default=1, help="default 1")
    s.add_argument("--node-selector", action="append", type=_key_value, metavar="KEY=VALUE",
                   help="predictor node selector; repeatable")
    s.add_argument("--toleration", action="append", metavar="KEY",
                   help="tolerate the NoSchedule taint KEY (e.g. nvidia.com/gpu); repeatable")
    s.add_argument("--onnx-artifact", default=DEFAULT_ONNX_ARTIFACT,
                   help=f"ONNX path under the model's artifacts (default {DEFAULT_ONNX_ARTIFACT})")
    s.add_argument("--artifacts-destination", metavar="URI",
                   help="the tracking server's --artifacts-destination: maps mlflow-artifacts:/ URIs onto it")
    s.add_argument("--storage-uri", help="serve this URI as is (skip the registry lookup)")
    s.set_defaults(func=_cmd_manifest)
