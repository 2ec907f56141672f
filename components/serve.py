"""Serving on KServe: an ``InferenceService`` for the registered model that holds an alias (``champion``).

* :func:`resolve_model` / :func:`resolve_storage_uri` ask the MLflow registry which version holds the alias and
  where its files are (``MlflowClient.get_model_version_download_uri``, which turns the version's
  ``models:/<model_id>`` source into the logged model's artifact location, e.g.
  ``s3://bucket/mlartifacts/1/models/m-.../artifacts``).
* :func:`inference_service_manifest` builds a ``serving.kserve.io/v1beta1`` InferenceService with
  ``predictor.model.modelFormat`` ``mlflow`` or ``onnx``, ``protocolVersion: v2`` (the KServe runtimes for both,
  MLServer and Triton, speak the Open Inference Protocol), resources and replica bounds.
* :func:`validate_inference_service` checks it against the ``kserve`` SDK model ``V1beta1InferenceService``
  (:func:`components.k8s.validate_against_sdk`).

What each format serves:

* ``mlflow``: the whole MLflow model folder (``MLmodel`` + ``data/lgmsnet/``). Its pyfunc loader is
  :mod:`components.mlflow_model`, so the serving runtime's image must have this project installed: point
  ``runtime`` at a ServingRuntime built from the project image (``docs/deploy.md``); KServe's stock
  ``kserve-mlserver`` image does not have ``lgmsnet``.
* ``onnx``: the ONNX export that :func:`components.mlflow_model.log_model` stores **inside the model** at
  ``data/lgmsnet/model.onnx`` (:data:`DEFAULT_ONNX_ARTIFACT`, relative to the model version's artifact root;
  pass ``onnx_artifact`` for another layout). The export has a fixed image size and no pre/post-processing (the
  client resizes and normalises as ``serving.json`` says). KServe's stock ONNX runtime is Triton, which needs a
  model repository (``<repo>/<model>/1/model.onnx``); publish that layout and pass its root as ``storage_uri``
  (or ``onnx_artifact`` pointing at it).

KServe's storage initializer downloads ``storageUri`` into the pod; it reads ``s3://``, ``gs://``, ``pvc://``,
``hdfs://``, ``webhdfs://``, ``http(s)://``, ``hf://`` and ``oci://`` URIs, not paths on this machine and not
MLflow's proxied ``mlflow-artifacts:`` URIs. A tracking server started with ``--serve-artifacts`` (the default)
returns the latter: pass ``artifacts_destination`` (its ``--artifacts-destination``, e.g. ``s3://bucket/mlartifacts``)
to map them onto the bucket.

mlflow and kserve are imported at the point of use.
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlparse

from components.k8s import (
    GPU_RESOURCE,
    ManifestError,
    _check_dns1035,
    _check_dns1123,
    _check_labels,
    _check_namespace,
    _check_quantity,
    _raise_problems,
    _sdk_models,
    validate_against_sdk,
)

__all__ = [
    "DEFAULT_ALIAS",
    "DEFAULT_ONNX_ARTIFACT",
    "KSERVE_STORAGE_SCHEMES",
    "MODEL_FORMATS",
    "ResolvedModel",
    "ServeError",
    "inference_service_manifest",
    "isvc_name",
    "resolve_model",
    "resolve_storage_uri",
    "validate_inference_service",
]

log = logging.getLogger(__name__)

MODEL_FORMATS = ("mlflow", "onnx")
DEFAULT_ALIAS = "champion"
DEFAULT_ONNX_ARTIFACT = "data/lgmsnet/model.onnx"
"""Where :func:`components.mlflow_model.log_model` puts the ONNX export, relative to the model's artifact root."""
KSERVE_STORAGE_SCHEMES = ("s3", "gs", "pvc", "hdfs", "webhdfs", "http", "https", "hf", "oci")
ISVC_API_VERSION = "serving.kserve.io/v1beta1"
ISVC_KIND = "InferenceService"
_PROTOCOLS = ("v1", "v2", "grpc-v1", "grpc-v2")


class ServeError(ValueError):
    """The model to serve cannot be resolved (no such model/alias, no ONNX export, unusable storage URI)."""


@dataclass(frozen=True)
class ResolvedModel:
    """The registered model version behind an alias and where KServe reads it.

    Attributes:
        name: registered model name.
        alias: the alias that was resolved.
        version: the model version holding it.
        run_id: the training run of that version (None if not recorded).
        source: the version's registry source (``models:/<model_id>`` for MLflow 3 logged models).
        model_uri: the model's artifact location (the MLflow model folder).
        storage_uri: what goes into ``storageUri`` (the model folder, or the ONNX artifact for ``onnx``).
        format: ``mlflow`` or ``onnx``.
    """

    name: str
    alias: str
    version: str
    run_id: str | None
    source: str
    model_uri: str
    storage_uri: str
    format: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict."""
        return asdict(self)


def isvc_name(model_name: str) -> str:
    """A DNS-1035 InferenceService name derived from a registered model name (``LGMSNet_v2`` → ``lgmsnet-v2``)."""
    name = re.sub(r"[^a-z0-9-]+", "-", model_name.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if not name or not name[0].isalpha():
        name = f"m-{name}".rstrip("-")
    return name[:63].rstrip("-")


def _storage_problems(uri: Any) -> list[str]:
    if not isinstance(uri, str) or not uri:
        return [f"storage_uri must be a non-empty URI string; got {uri!r}"]
    scheme = urlparse(uri).scheme
    if scheme in KSERVE_STORAGE_SCHEMES:
        return []
    if scheme == "mlflow-artifacts":
        return [f"storage_uri {uri!r} is an MLflow proxied-artifact URI that KServe cannot download; pass "
                "artifacts_destination (the tracking server's --artifacts-destination, e.g. s3://bucket/mlartifacts) "
                "or give the object-store URI directly"]
    if scheme in ("", "file") or len(scheme) == 1:  # '' or a Windows drive letter: a path on this machine
        return [f"storage_uri {uri!r} is a path on this machine, which the cluster cannot read; store MLflow artifacts "
                "in object storage (mlflow server --artifacts-destination s3://...) or copy the model to s3:// or "
                "a PVC (pvc://CLAIM/PATH)"]
    return [f"storage_uri {uri!r} has the scheme {scheme!r}, which KServe's storage initializer does not read "
            f"(allowed: {', '.join(KSERVE_STORAGE_SCHEMES)})"]


def inference_service_manifest(
    name: str,
    storage_uri: str,
    *,
    model_format: str = "mlflow",
    namespace: str = "kserve",
    cpu: str = "2",
    memory: str = "4Gi",
    gpus: int = 0,
    service_account: str | None = None,
    min_replicas: int = 1,
    max_replicas: int = 1,
    runtime: str | None = None,
    protocol_version: str = "v2",
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, Any]] | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build a KServe ``v1beta1`` InferenceService serving ``storage_uri``.

    Args:
        name: InferenceService name (DNS-1035, e.g. :func:`isvc_name` of the registered model).
        storage_uri: where the model lies (:func:`resolve_storage_uri`); a scheme KServe downloads
            (:data:`KSERVE_STORAGE_SCHEMES`).
        model_format: ``mlflow`` (the MLflow model folder) or ``onnx``.
        namespace: where it is served.
        cpu: CPU request and limit of the predictor.
        memory: memory request and limit.
        gpus: ``nvidia.com/gpu`` limit (0: CPU serving).
        service_account: predictor service account; KServe reads the object-store credentials from the Secrets
            it lists (``docs/deploy.md``).
        min_replicas: lower replica bound (0 allows scale-to-zero in serverless mode).
        max_replicas: upper replica bound (>= ``min_replicas``, >= 1).
        runtime: a ServingRuntime name to pin (e.g. one built from the project image for ``mlflow``); None lets
            KServe pick one for the format.
        protocol_version: ``v2`` (Open Inference Protocol; what KServe's MLServer and Triton runtimes serve).
        node_selector: predictor pod node selector (e.g. a GPU pool).
        tolerations: predictor pod tolerations.
        labels: extra labels on the InferenceService.

    Returns:
        The manifest as a dict; it passes :func:`validate_inference_service`.

    Raises:
        ManifestError: every invalid argument, in one message.
    """
    problems: list[str] = []
    _check_dns1035(name, "name", problems)
    _check_namespace(namespace, "namespace", problems)
    if model_format not in MODEL_FORMATS:
        problems.append(f"model_format must be one of {', '.join(MODEL_FORMATS)}; got {model_format!r}")
    problems += _storage_problems(storage_uri)
    _check_quantity(cpu, "cpu", problems)
    _check_quantity(memory, "memory", problems)
    if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 0:
        problems.append(f"gpus must be an integer >= 0; got {gpus!r}")
    for what, value, low in (("min_replicas", min_replicas, 0), ("max_replicas", max_replicas, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            problems.append(f"{what} must be an integer >= {low}; got {value!r}")
    if isinstance(min_replicas, int) and isinstance(max_replicas, int) and max_replicas < min_replicas:
        problems.append(f"max_replicas={max_replicas} is below min_replicas={min_replicas}")
    if protocol_version not in _PROTOCOLS:
        problems.append(f"protocol_version must be one of {', '.join(_PROTOCOLS)}; got {protocol_version!r}")
    if service_account is not None:
        _check_dns1123(service_account, "service_account", problems)
    if runtime is not None:
        _check_dns1123(runtime, "runtime", problems)
    if node_selector:
        _check_labels(node_selector, "node_selector", problems)
    if labels:
        _check_labels(labels, "labels", problems)
    _raise_problems(f"InferenceService {name!r}", problems)

    resources: dict[str, dict[str, str]] = {"requests": {"cpu": cpu, "memory": memory},
                                            "limits": {"cpu": cpu, "memory": memory}}
    if gpus:
        resources["limits"][GPU_RESOURCE] = str(gpus)
    model: dict[str, Any] = {
        "modelFormat": {"name": model_format},
        "protocolVersion": protocol_version,
        "storageUri": storage_uri,
        "resources": resources,
    }
    if runtime is not None:
        model["runtime"] = runtime
    predictor: dict[str, Any] = {"minReplicas": min_replicas, "maxReplicas": max_replicas, "model": model}
    if service_account is not None:
        predictor["serviceAccountName"] = service_account
    if node_selector:
        predictor["nodeSelector"] = dict(node_selector)
    if tolerations:
        predictor["tolerations"] = [dict(t) for t in tolerations]
    meta_labels = {"app.kubernetes.io/name": "lgmsnet", "app.kubernetes.io/component": "serving", **(labels or {})}
    return {
        "apiVersion": ISVC_API_VERSION,
        "kind": ISVC_KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": meta_labels},
        "spec": {"predictor": predictor},
    }


def validate_inference_service(manifest: Mapping[str, Any], *, sdk: bool = True) -> Any:
    """Check an InferenceService against KServe's rules and the ``kserve`` SDK model ``V1beta1InferenceService``.

    Rules: ``apiVersion`` ``serving.kserve.io/v1beta1``, ``kind`` ``InferenceService``, a DNS-1035 name, a
    ``predictor.model`` with ``modelFormat.name`` in :data:`MODEL_FORMATS`, ``protocolVersion`` ``v2`` (without
    it KServe finds no runtime for onnx/mlflow) and a ``storageUri`` KServe can download; ``minReplicas <=
    maxReplicas``. Then :func:`components.k8s.validate_against_sdk` (types, unknown fields, required fields,
    lossless round trip through the SDK classes).

    Args:
        manifest: the InferenceService as a dict.
        sdk: also check against the SDK model (needs ``kserve``); False checks the rules only.

    Returns:
        The ``V1beta1InferenceService`` object (None when ``sdk`` is False).

    Raises:
        ManifestError: every problem, with its path.
        ModuleNotFoundError: the ``kserve`` SDK is not installed (the message has the install command).
    """
    if not isinstance(manifest, Mapping):
        raise ManifestError(f"an InferenceService manifest must be a mapping; got {type(manifest).__name__}")
    problems: list[str] = []
    if manifest.get("apiVersion") != ISVC_API_VERSION:
        problems.append(f"$.apiVersion must be {ISVC_API_VERSION}; got {manifest.get('apiVersion')!r}")
    if manifest.get("kind") != ISVC_KIND:
        problems.append(f"$.kind must be {ISVC_KIND}; got {manifest.get('kind')!r}")
    meta = manifest.get("metadata") or {}
    name = meta.get("name") if isinstance(meta, Mapping) else None
    _check_dns1035(name, "$.metadata.name", problems)
    predictor = ((manifest.get("spec") or {}).get("predictor")) if isinstance(manifest.get("spec"), Mapping) else None
    model = predictor.get("model") if isinstance(predictor, Mapping) else None
    if not isinstance(model, Mapping):
        problems.append("$.spec.predictor.model is required (modelFormat, protocolVersion, storageUri)")
    else:
        fmt = (model.get("modelFormat") or {}).get("name") if isinstance(model.get("modelFormat"), Mapping) else None
        if fmt not in MODEL_FORMATS:
            problems.append(f"$.spec.predictor.model.modelFormat.name must be one of {', '.join(MODEL_FORMATS)}; "
                            f"got {fmt!r}")
        if model.get("protocolVersion") != "v2":
            problems.append(f"$.spec.predictor.model.protocolVersion must be 'v2' for {fmt} (KServe's MLServer and "
                            f"Triton runtimes); got {model.get('protocolVersion')!r}")
        problems += [f"$.spec.predictor.model.storageUri: {p}" for p in _storage_problems(model.get("storageUri"))]
        lo, hi = predictor.get("minReplicas"), predictor.get("maxReplicas")  # type: ignore[union-attr]
        if isinstance(lo, int) and isinstance(hi, int) and hi < lo:
            problems.append(f"$.spec.predictor.maxReplicas={hi} is below minReplicas={lo}")
    _raise_problems(f"InferenceService {name!r}", problems)
    if not sdk:
        return None
    import kubernetes.client.models as k8s_models

    kserve_models = _sdk_models("kserve.models", "kserve==0.21.0")
    return validate_against_sdk(manifest, "V1beta1InferenceService", [kserve_models, k8s_models],
                                f"InferenceService {name!r}")


# --------------------------------------------------------------------------------------------- registry


def _map_proxied(uri: str, artifacts_destination: str | None) -> str:
    """``mlflow-artifacts:/<path>`` → ``<artifacts_destination>/<path>`` (what the tracking server stores)."""
    if artifacts_destination is None or urlparse(uri).scheme != "mlflow-artifacts":
        return uri
    path = urlparse(uri).path.lstrip("/")
    return f"{artifacts_destination.rstrip('/')}/{path}"


def _join(base: str, rel: str) -> str:
    return f"{base.rstrip('/')}/{rel.strip('/')}"


def _onnx_present(model_uri: str, onnx_artifact: str, tracking_uri: str) -> bool:
    import mlflow

    parent, leaf = posixpath.split(onnx_artifact.strip("/"))
    listing = mlflow.artifacts.list_artifacts(
        artifact_uri=_join(model_uri, parent) if parent else model_uri, tracking_uri=tracking_uri
    )
    return any(posixpath.basename(f.path.rstrip("/")) == leaf for f in listing)


def resolve_model(
    tracking_uri: str | None,
    model_name: str,
    alias: str = DEFAULT_ALIAS,
    fmt: str = "mlflow",
    *,
    onnx_artifact: str = DEFAULT_ONNX_ARTIFACT,
    artifacts_destination: str | None = None,
    check_onnx: bool = True,
    settings: Any = None,
) -> ResolvedModel:
    """Find the version of ``model_name`` that holds ``alias`` and the URI KServe should load.

    Args:
        tracking_uri: MLflow tracking/registry URI (None: ``MLFLOW_TRACKING_URI``, then ``./mlflow.db``).
        model_name: registered model name.
        alias: registry alias (``champion`` after an approved promotion).
        fmt: ``mlflow`` (the model folder) or ``onnx`` (``onnx_artifact`` under it).
        onnx_artifact: path of the ONNX export (file, or a Triton repository folder) relative to the model's
            artifact root; default :data:`DEFAULT_ONNX_ARTIFACT`, where ``log_model`` puts it.
        artifacts_destination: the tracking server's ``--artifacts-destination``; maps ``mlflow-artifacts:``
            URIs onto the object store.
        check_onnx: for ``onnx``, list the model's artifacts and fail when the export is missing.
        settings: :class:`components.tracking.TrackingSettings` (retries, timeouts).

    Returns:
        :class:`ResolvedModel`.

    Raises:
        ServeError: unknown model or alias (the message lists the aliases that exist), no ONNX export.
        TrackingError: the tracking server is unreachable (after bounded retries).
    """
    from mlflow.exceptions import MlflowException

    from components import tracking

    if fmt not in MODEL_FORMATS:
        raise ServeError(f"format must be one of {', '.join(MODEL_FORMATS)}; got {fmt!r}")
    uri = tracking.resolve_tracking_uri(tracking_uri)
    with tracking.bounded_http(settings), tracking.translate_errors(uri, f"resolve {model_name}@{alias}"):
        tracking.check_tracking_server(uri, settings)
        client = tracking.client(uri)
        try:
            mv = client.get_model_version_by_alias(model_name, alias)
        except MlflowException as exc:
            try:
                aliases = dict(client.get_registered_model(model_name).aliases or {})
            except MlflowException:
                raise ServeError(
                    f"registered model {model_name!r} does not exist at {uri}; check --name (and --tracking-uri), "
                    "or register a model first (`lgmsnet registry register`)."
                ) from exc
            have = ", ".join(f"{a} -> v{v}" for a, v in sorted(aliases.items())) or "none"
            raise ServeError(
                f"registered model {model_name!r} has no alias {alias!r} (aliases: {have}); promote a version "
                f"(`lgmsnet registry promote {model_name} VERSION`) or pass another --alias."
            ) from exc
        version = str(mv.version)
        model_uri = str(client.get_model_version_download_uri(model_name, version))
        storage = model_uri
        if fmt == "onnx":
            if check_onnx and not _onnx_present(model_uri, onnx_artifact, uri):
                raise ServeError(
                    f"{model_name} version {version} (alias {alias!r}) has no ONNX export at {onnx_artifact!r} under "
                    f"{model_uri}; log the model with onnx_path (components.mlflow_model.log_model) or pass "
                    "--onnx-artifact with the path it has."
                )
            storage = _join(model_uri, onnx_artifact)
    resolved = ResolvedModel(
        name=model_name,
        alias=alias,
        version=version,
        run_id=getattr(mv, "run_id", None) or None,
        source=str(mv.source),
        model_uri=_map_proxied(model_uri, artifacts_destination),
        storage_uri=_map_proxied(storage, artifacts_destination),
        format=fmt,
    )
    log.info("%s@%s is version %s: %s", model_name, alias, version, resolved.storage_uri)
    return resolved


def resolve_storage_uri(
    tracking_uri: str | None,
    model_name: str,
    alias: str = DEFAULT_ALIAS,
    fmt: str = "mlflow",
    *,
    onnx_artifact: str = DEFAULT_ONNX_ARTIFACT,
    artifacts_destination: str | None = None,
) -> str:
    """The ``storageUri`` for the version of ``model_name`` holding ``alias`` (see :func:`resolve_model`).

    For ``mlflow`` the model version's artifact location (the MLflow model folder); for ``onnx`` the ONNX
    artifact ``onnx_artifact`` under it (checked to exist).

    Raises:
        ServeError: unknown model or alias, missing ONNX export.
        TrackingError: the tracking server is unreachable.
    """
    return resolve_model(tracking_uri, model_name, alias, fmt, onnx_artifact=onnx_artifact,
                         artifacts_destination=artifacts_destination).storage_uri
