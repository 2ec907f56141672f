"""Multi-GPU / multi-node training on Kubernetes: a Kubeflow Training Operator v1 ``PyTorchJob``, built by code.

* :func:`pytorchjob_manifest` builds the job as a plain dict: one ``Master`` replica plus ``nodes - 1`` ``Worker``
  replicas (the ``Worker`` entry is omitted for one node), each a pod with the container ``pytorch`` (the name the
  operator looks for) running ``torchrun ... -m lgmsnet.cli train ARGS`` (plus ``--resume`` when a restarted pod
  finds the run's ``checkpoints/last.pt``).
* :func:`validate_pytorchjob` checks it against the official SDK model ``KubeflowOrgV1PyTorchJob``
  (``kubeflow-training``): every field must deserialize into the SDK classes with the right type (unknown fields
  and wrong types are reported with their path, required fields must be present) and serialize back unchanged.
* :func:`submit_and_wait` creates it through a ``kubernetes.client.CustomObjectsApi`` (passed in) and polls its
  status conditions until ``Succeeded`` or ``Failed``.

How torchrun finds its peers (Training Operator v1, ``pkg/controller.v1/pytorch/envvar.go``): when the job has a
``Master`` replica and ``spec.nprocPerNode`` is set, the operator injects into every pod ``PET_NNODES`` (total
replicas), ``PET_NODE_RANK`` (0 for the master, ``i + 1`` for worker ``i``), ``PET_NPROC_PER_NODE`` (from
``nprocPerNode``), ``MASTER_ADDR`` (the ``<name>-master-0`` service) and ``MASTER_PORT``, plus ``WORLD_SIZE``/
``RANK``. torchrun reads its options from ``PET_<OPTION>`` (``torch.distributed.argparse_util.env``), so
``--nnodes``, ``--node-rank`` and ``--nproc-per-node`` need no flags. The master address is the exception: torchrun
reads ``PET_MASTER_ADDR``, which the v1 operator does not set, so the launch line passes
``--master-addr="$MASTER_ADDR" --master-port="$MASTER_PORT"`` from the container's environment.

Restarts: replicas restart ``OnFailure`` (up to ``backoffLimit``). ``lgmsnet train`` refuses to start over in a
run folder that holds a run, and ``--resume`` refuses a folder without one, so the container runs a one-line
``/bin/sh`` launcher (:data:`LAUNCH_SCRIPT`) that adds ``--resume`` exactly when ``$LGMSNET_RUN_DIR/checkpoints/
last.pt`` exists: a restarted pod continues the run instead of failing again. The training options are passed
as the shell's positional parameters (``"$@"``), never interpolated into the script.

The shared validation helper :func:`validate_against_sdk` is reused by :mod:`components.serve` for KServe.
``kubeflow-training`` and ``kubernetes`` are imported at the point of use.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

import yaml

__all__ = [
    "CONTAINER_NAME",
    "GPU_NODE_SELECTOR",
    "GPU_RESOURCE",
    "GPU_TOLERATION",
    "IMAGE_UID",
    "JobError",
    "JobFailedError",
    "JobTimeoutError",
    "LAUNCH_SCRIPT",
    "ManifestError",
    "PYTORCHJOB_GROUP",
    "PYTORCHJOB_PLURAL",
    "PYTORCHJOB_VERSION",
    "dump_yaml",
    "pytorchjob_manifest",
    "sdk_available",
    "submit_and_wait",
    "validate_against_sdk",
    "validate_pytorchjob",
]

log = logging.getLogger(__name__)

PYTORCHJOB_GROUP = "kubeflow.org"
PYTORCHJOB_VERSION = "v1"
PYTORCHJOB_PLURAL = "pytorchjobs"
PYTORCHJOB_KIND = "PyTorchJob"
CONTAINER_NAME = "pytorch"
"""The Training Operator finds the training container (and its port) by this name."""
PORT_NAME = "pytorchjob-port"
DEFAULT_PORT = 23456
GPU_RESOURCE = "nvidia.com/gpu"
GPU_NODE_SELECTOR: dict[str, str] = {"lgmsnet.io/node-pool": "gpu"}
"""The GPU node pool label that ``pipelines.retraining.ClusterOptions`` also uses (see ``docs/deploy.md``)."""
GPU_TOLERATION: dict[str, str] = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
"""Tolerates the usual taint of GPU nodes (``nvidia.com/gpu:NoSchedule``)."""
IMAGE_UID = 10001
"""The non-root user of the project image (``Dockerfile``); pods run as this UID/GID and own mounted volumes."""
CLEAN_POD_POLICIES = ("None", "Running", "All")
_REPLICA_TYPES = ("Master", "Worker")
LAUNCH_SCRIPT = (
    'if [ -f "$LGMSNET_RUN_DIR/checkpoints/last.pt" ]; then set -- "$@" --resume; fi; '
    'exec torchrun --master-addr="$MASTER_ADDR" --master-port="$MASTER_PORT" -m lgmsnet.cli train "$@"'
)
"""The container's launcher (``/bin/sh -c LAUNCH_SCRIPT lgmsnet-train TRAIN_ARGS...``)."""
_TERMINAL = ("Succeeded", "Failed")

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_SECRET_LIKE = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL", re.IGNORECASE)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


class ManifestError(ValueError):
    """A manifest (or an argument used to build it) is invalid; the message lists every problem with its path."""


class JobError(RuntimeError):
    """A PyTorchJob could not be created, or did not succeed.

    Attributes:
        name: the job's name.
        namespace: its namespace.
        condition: the last status condition seen (``type``, ``reason``, ``message`` ...), or None.
    """

    def __init__(self, message: str, *, name: str, namespace: str,
                 condition: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.namespace = namespace
        self.condition = dict(condition) if condition else None


class JobFailedError(JobError):
    """The job reached the ``Failed`` condition (the message carries the operator's reason and message)."""


class JobTimeoutError(JobError):
    """The job reached neither ``Succeeded`` nor ``Failed`` within ``timeout_s``."""


# --------------------------------------------------------------------------------------------- validation helpers


def _check_dns1035(value: Any, what: str, problems: list[str], max_len: int = 63) -> None:
    if not isinstance(value, str) or not _DNS1035.match(value) or len(value) > max_len:
        problems.append(
            f"{what} must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter, ending "
            f"with a letter or digit, at most {max_len} characters); got {value!r}"
        )


def _check_namespace(value: Any, what: str, problems: list[str]) -> None:
    if not isinstance(value, str) or not _DNS1123_LABEL.match(value) or len(value) > 63:
        problems.append(f"{what} must be a DNS-1123 label (lower-case letters, digits and '-', at most 63 "
                        f"characters); got {value!r}")


def sdk_available(module: str) -> bool:
    """Whether ``module`` (``"kubeflow.training"``, ``"kserve"``) can be imported here."""
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _sdk_models(module: str, package: str) -> ModuleType:
    """Import an SDK's ``models`` module, or fail with the install command."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"checking manifests against the official SDK needs {package}: pip install '{package}' "
            "(pinned in requirements/lock.txt)", name=exc.name
        ) from exc


def _check_dns1123(value: Any, what: str, problems: list[str]) -> None:
    if not isinstance(value, str) or not _DNS1123_SUBDOMAIN.match(value) or len(value) > 253:
        problems.append(f"{what} must be a DNS-1123 name (lower-case letters, digits, '-' and '.'); got {value!r}")


def _check_quantity(value: Any, what: str, problems: list[str]) -> None:
    from kubernetes.utils.quantity import parse_quantity

    try:
        if not isinstance(value, str) or parse_quantity(value) <= 0:
            raise ValueError
    except ValueError:
        problems.append(f"{what} must be a positive Kubernetes quantity string such as '8', '500m', '32Gi'; "
                        f"got {value!r}")


def _check_labels(labels: Mapping[str, Any], what: str, problems: list[str]) -> None:
    for key, value in labels.items():
        name = str(key).rsplit("/", 1)[-1]
        if not isinstance(key, str) or not _LABEL_NAME.match(name) or len(name) > 63:
            problems.append(f"{what} key {key!r} is not a valid label name (alphanumerics, '-', '_', '.', <= 63)")
        if not isinstance(value, str) or not _LABEL_VALUE.match(value) or len(value) > 63:
            problems.append(f"{what}[{key!r}] = {value!r} is not a valid label value (alphanumerics, '-', '_', '.', "
                            "<= 63 characters, starting and ending with an alphanumeric)")


def _raise_problems(what: str, problems: Sequence[str]) -> None:
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ManifestError(f"{what} is invalid ({len(problems)} problem(s)):\n{listing}")


def _resolve_class(type_name: str, modules: Sequence[ModuleType]) -> type | None:
    for module in modules:
        klass = getattr(module, type_name, None)
        if klass is not None:
            return klass
    return None


_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "date": (str,),
    "datetime": (str,),
}


def _to_sdk(data: Any, type_name: str, modules: Sequence[ModuleType], path: str, problems: list[str]) -> Any:
    """Strictly build SDK model objects from ``data``: the ApiClient's deserialisation, with errors for casts."""
    if type_name.startswith("list["):
        if not isinstance(data, list):
            problems.append(f"{path}: expected a list ({type_name}), got {type(data).__name__}")
            return None
        inner = type_name[5:-1]
        return [_to_sdk(item, inner, modules, f"{path}[{i}]", problems) for i, item in enumerate(data)]
    if type_name.startswith("dict("):
        if not isinstance(data, dict):
            problems.append(f"{path}: expected a mapping ({type_name}), got {type(data).__name__}")
            return None
        inner = re.match(r"dict\(([^,]*), (.*)\)", type_name).group(2)  # type: ignore[union-attr]
        return {k: _to_sdk(v, inner, modules, f"{path}.{k}", problems) for k, v in data.items()}
    if type_name == "object":
        return data
    if type_name in _PRIMITIVES:
        allowed = _PRIMITIVES[type_name]
        if not isinstance(data, allowed) or (isinstance(data, bool) and bool not in allowed):
            problems.append(f"{path}: expected {type_name}, got {type(data).__name__} {data!r}")
        return data
    klass = _resolve_class(type_name, modules)
    if klass is None:
        problems.append(f"{path}: the SDK has no model class {type_name} (SDK version mismatch?)")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path}: expected a mapping ({type_name}), got {type(data).__name__}")
        return None
    by_json = {json_key: attr for attr, json_key in klass.attribute_map.items()}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        attr = by_json.get(key)
        if attr is None:
            problems.append(f"{path}.{key}: unknown field of {type_name} (known: {', '.join(sorted(by_json))})")
            continue
        if value is None:
            continue
        kwargs[attr] = _to_sdk(value, klass.openapi_types[attr], modules, f"{path}.{key}", problems)
    try:
        return klass(**kwargs)
    except (ValueError, TypeError) as exc:  # the generated models check required fields and enums here
        problems.append(f"{path} ({type_name}): {exc}")
        return None


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in b:
                out.append(f"{path}.{key}: dropped by the SDK model")
            elif key not in a:
                # a default the model class fills in (e.g. V1beta1ModelSpec.name = ""): nothing of the input is lost
                log.debug("%s.%s: defaulted to %r by the SDK model", path, key, b[key])
            else:
                _diff(a[key], b[key], f"{path}.{key}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{path}[{i}]", out)
    elif a != b or type(a) is not type(b):
        out.append(f"{path}: {a!r} became {b!r}")


def validate_against_sdk(manifest: Mapping[str, Any], type_name: str, modules: Sequence[ModuleType],
                         what: str) -> Any:
    """Deserialize ``manifest`` into an SDK model class and check a lossless round trip.

    Uses the generated models' own metadata (``openapi_types``/``attribute_map``, what ``ApiClient.deserialize``
    walks) but reports, with their path, the unknown fields and wrong types that the ApiClient would silently drop
    or cast; the model constructors enforce required fields. The object is then serialized back with
    ``kubernetes.client.ApiClient.sanitize_for_serialization``: every input field must come back unchanged (fields
    the model classes fill with their defaults, such as ``V1beta1ModelSpec.name = ""``, are not a loss).

    Args:
        manifest: the resource as a JSON-compatible dict (camelCase keys, as ``kubectl apply`` takes it).
        type_name: the top-level model class, e.g. ``"KubeflowOrgV1PyTorchJob"``.
        modules: where model classes are looked up, in order (the SDK's ``models`` then
            ``kubernetes.client.models``).
        what: how to name the manifest in errors (e.g. ``"PyTorchJob 'x'"``).

    Returns:
        The SDK model object.

    Raises:
        ManifestError: every problem found, one per line, with its path.
    """
    from kubernetes.client import ApiClient

    try:
        data = json.loads(json.dumps(manifest))
    except (TypeError, ValueError) as exc:
        raise ManifestError(
            f"{what} is not JSON-serialisable ({exc}); use only str, int, float, bool, list and dict values."
        ) from exc
    problems: list[str] = []
    obj = _to_sdk(data, type_name, modules, "$", problems)
    _raise_problems(f"{what} (checked against {type_name})", problems)
    back = ApiClient().sanitize_for_serialization(obj)
    _diff(data, back, "$", problems)
    _raise_problems(f"{what} (round trip through {type_name})", problems)
    return obj


# --------------------------------------------------------------------------------------------- manifest


def _flag_value(args: Sequence[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _requested_device(args: Sequence[str]) -> str | None:
    device = _flag_value(args, "--device")
    for i, arg in enumerate(args):
        value = args[i + 1] if arg == "--set" and i + 1 < len(args) else arg[6:] if arg.startswith("--set=") else None
        if value and value.replace(" ", "").startswith("train.device="):
            device = value.split("=", 1)[1].strip()
    return device


def _train_args(train_args: Sequence[str], gpus_per_node: int, problems: list[str]) -> list[str]:
    if isinstance(train_args, (str, bytes)):
        problems.append(f"train_args must be a list of options, e.g. ['--data', DIR, '--out', RUN]; got the string "
                        f"{train_args!r}")
        train_args = []
    args = [str(a) for a in train_args]
    if not args or args[0] in ("train", "lgmsnet"):
        problems.append(f"train_args are the options of `lgmsnet train` (e.g. ['--data', DIR, '--out', RUN]); "
                        f"do not include the command itself; got {args!r}")
    if _flag_value(args, "--out") is None:
        problems.append("train_args must include --out RUN_DIR (on the mounted volume, e.g. /workspace/runs/NAME); "
                        f"got {args!r}")
    device = _requested_device(args)
    if gpus_per_node > 0:
        if device is None:
            args += ["--device", "cuda"]
        elif not device.startswith("cuda"):
            problems.append(f"gpus_per_node={gpus_per_node} but train_args ask for device {device!r}; the GPUs would "
                            "sit idle: drop the device option (cuda is added) or set gpus_per_node=0")
        elif ":" in device:
            problems.append(f"train_args ask for device {device!r}; under torchrun use plain 'cuda' (each process "
                            "takes cuda:LOCAL_RANK)")
    elif device is not None and device.startswith("cuda"):
        problems.append(f"train_args ask for device {device!r} but gpus_per_node=0; request GPUs or use --device cpu")
    return args


def _env(env: Mapping[str, str] | None, secret_env: Mapping[str, tuple[str, str]] | None,
         problems: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key, value in (env or {}).items():
        if not _ENV_NAME.match(str(key)):
            problems.append(f"env name {key!r} is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)")
        if _SECRET_LIKE.search(str(key)):
            problems.append(f"env {key!r} looks like a credential; never put secret values in a manifest: pass it as "
                            f"secret_env={{{key!r}: (SECRET_NAME, KEY)}} so the pod reads it from a Secret")
        if not isinstance(value, str):
            problems.append(f"env[{key!r}] must be a string, got {type(value).__name__} {value!r}")
        out.append({"name": str(key), "value": value})
    for key, ref in (secret_env or {}).items():
        if not _ENV_NAME.match(str(key)):
            problems.append(f"secret_env name {key!r} is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)")
        if not (isinstance(ref, (tuple, list)) and len(ref) == 2):
            problems.append(f"secret_env[{key!r}] must be (secret name, key), e.g. ('lgmsnet-s3', "
                            f"'AWS_ACCESS_KEY_ID'); got {ref!r}")
            continue
        secret, secret_key = ref
        _check_dns1123(secret, f"secret_env[{key!r}] secret name", problems)
        if not isinstance(secret_key, str) or not _SECRET_KEY.match(secret_key):
            problems.append(f"secret_env[{key!r}] key must match [-._a-zA-Z0-9]+; got {secret_key!r}")
        out.append({"name": str(key), "valueFrom": {"secretKeyRef": {"name": secret, "key": secret_key}}})
    names = [e["name"] for e in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"environment variable(s) {', '.join(dupes)} given in both env and secret_env; keep one")
    return out


def pytorchjob_manifest(
    name: str,
    image: str,
    train_args: Sequence[str],
    *,
    namespace: str = "kubeflow",
    nodes: int = 1,
    nproc_per_node: int = 1,
    gpus_per_node: int = 1,
    cpu: str = "8",
    memory: str = "32Gi",
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, Any]] | None = None,
    secret_env: Mapping[str, tuple[str, str]] | None = None,
    env: Mapping[str, str] | None = None,
    volume_claim: str | None = None,
    mount_path: str = "/workspace",
    service_account: str | None = None,
    clean_pod_policy: str = "Running",
    backoff_limit: int = 3,
    active_deadline_s: int | None = None,
    ttl_after_finished_s: int | None = None,
    shm_size: str | None = "8Gi",
    image_pull_policy: str = "IfNotPresent",
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build a ``kubeflow.org/v1`` PyTorchJob that runs ``lgmsnet train`` under torchrun on ``nodes`` pods.

    Every pod (1 ``Master`` + ``nodes - 1`` ``Worker``) runs the container ``pytorch``::

        torchrun --master-addr=$MASTER_ADDR --master-port=$MASTER_PORT -m lgmsnet.cli train TRAIN_ARGS [--resume]

    with ``nproc_per_node`` processes (``spec.nprocPerNode``; torchrun reads it, the node count and the node rank
    from the ``PET_*`` variables the operator injects). With GPUs, ``--device cuda`` is appended unless
    ``train_args`` choose the device (each process then takes ``cuda:LOCAL_RANK``). Pods run as the image's
    non-root UID (:data:`IMAGE_UID`), with ``/dev/shm`` enlarged for DataLoader workers. ``--resume`` is added
    when a restarted pod finds ``checkpoints/last.pt`` in the ``--out`` folder (:data:`LAUNCH_SCRIPT`), so use a
    new ``--out`` for every job.

    Args:
        name: job name (DNS-1035; the operator derives ``<name>-master-0`` / ``<name>-worker-N`` from it).
        image: the project image (``Dockerfile``), e.g. ``registry.example.org/lgmsnet:0.1.0-cu128``.
        train_args: options of ``lgmsnet train``; must include ``--out`` (put it on the mounted volume).
        namespace: where the job runs.
        nodes: pods (1 master + ``nodes - 1`` workers).
        nproc_per_node: training processes per pod (at most ``gpus_per_node`` when GPUs are used).
        gpus_per_node: ``nvidia.com/gpu`` limit per pod; 0 for CPU training (gloo).
        cpu: CPU request and limit per pod (Kubernetes quantity).
        memory: memory request and limit per pod.
        node_selector: pod node selector, e.g. :data:`GPU_NODE_SELECTOR`.
        tolerations: pod tolerations, e.g. ``[GPU_TOLERATION]``.
        secret_env: ``{ENV: (secret name, key)}`` read from Secrets, e.g.
            ``{"AWS_ACCESS_KEY_ID": ("lgmsnet-s3", "AWS_ACCESS_KEY_ID")}``; only names go into the manifest.
        env: plain (non-secret) variables, e.g. ``MLFLOW_TRACKING_URI``; credential-like names are refused.
        volume_claim: a PersistentVolumeClaim mounted at ``mount_path`` in every pod (ReadWriteMany for more than
            one node: data, run folder and checkpoints live there).
        mount_path: where ``volume_claim`` is mounted.
        service_account: pod service account (e.g. for workload identity to object storage).
        clean_pod_policy: ``None``, ``Running`` (default: delete pods still running when the job ends, keep the
            others for their logs) or ``All``.
        backoff_limit: pod restarts before the job is marked failed.
        active_deadline_s: wall-clock limit of the job (None: none).
        ttl_after_finished_s: delete the finished job after this many seconds (None: keep it).
        shm_size: size of the in-memory ``/dev/shm`` volume (None: the container default, 64 MiB).
        image_pull_policy: ``IfNotPresent``, ``Always`` or ``Never``.
        labels: extra labels on the job and its pods.

    Returns:
        The manifest (a dict; :func:`dump_yaml` writes it for ``kubectl apply -f``). It passes
        :func:`validate_pytorchjob`.

    Raises:
        ManifestError: every invalid argument, in one message.
    """
    problems: list[str] = []
    _check_dns1035(name, "name", problems)
    if isinstance(name, str) and nodes > 1 and len(f"{name}-worker-{nodes - 2}") > 63:
        problems.append(f"name {name!r} is too long: the operator's service {name}-worker-{nodes - 2} would exceed "
                        "63 characters; shorten it")
    _check_namespace(namespace, "namespace", problems)
    if not isinstance(image, str) or not image.strip() or any(c.isspace() for c in image):
        problems.append(f"image must be an image reference such as registry/lgmsnet:0.1.0-cu128; got {image!r}")
    for what, value, low in (("nodes", nodes, 1), ("nproc_per_node", nproc_per_node, 1),
                             ("gpus_per_node", gpus_per_node, 0), ("backoff_limit", backoff_limit, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            problems.append(f"{what} must be an integer >= {low}; got {value!r}")
    gpus = gpus_per_node if isinstance(gpus_per_node, int) else 0
    if isinstance(nproc_per_node, int) and gpus > 0 and nproc_per_node > gpus:
        problems.append(f"nproc_per_node={nproc_per_node} exceeds gpus_per_node={gpus}: each process needs its own "
                        "GPU; lower nproc_per_node or request more GPUs")
    _check_quantity(cpu, "cpu", problems)
    _check_quantity(memory, "memory", problems)
    if shm_size is not None:
        _check_quantity(shm_size, "shm_size", problems)
    if clean_pod_policy not in CLEAN_POD_POLICIES:
        problems.append(f"clean_pod_policy must be one of {', '.join(CLEAN_POD_POLICIES)}; got {clean_pod_policy!r}")
    if image_pull_policy not in ("IfNotPresent", "Always", "Never"):
        problems.append(f"image_pull_policy must be IfNotPresent, Always or Never; got {image_pull_policy!r}")
    for what, value in (("active_deadline_s", active_deadline_s), ("ttl_after_finished_s", ttl_after_finished_s)):
        if value is not None and (not isinstance(value, int) or value < (1 if what == "active_deadline_s" else 0)):
            problems.append(f"{what} must be a non-negative integer (seconds) or None; got {value!r}")
    if volume_claim is not None:
        _check_dns1123(volume_claim, "volume_claim", problems)
    if not isinstance(mount_path, str) or not mount_path.startswith("/"):
        problems.append(f"mount_path must be an absolute path; got {mount_path!r}")
    if service_account is not None:
        _check_dns1123(service_account, "service_account", problems)
    if node_selector:
        _check_labels(node_selector, "node_selector", problems)
    if labels:
        _check_labels(labels, "labels", problems)
    args = _train_args(train_args, gpus, problems)
    container_env = _env({"LGMSNET_RUN_DIR": _flag_value(args, "--out") or "", **(env or {})}, secret_env, problems)
    _raise_problems(f"PyTorchJob {name!r}", problems)
    if nodes > 1 and volume_claim is None:
        log.warning("PyTorchJob %s: %d nodes without volume_claim: each pod has its own --out, so checkpoints are "
                    "not shared and a restarted pod resumes differently from the others; mount a ReadWriteMany "
                    "PersistentVolumeClaim", name, nodes)

    resources: dict[str, dict[str, str]] = {"requests": {"cpu": cpu, "memory": memory},
                                            "limits": {"cpu": cpu, "memory": memory}}
    if gpus > 0:
        resources["limits"][GPU_RESOURCE] = str(gpus)
    mounts: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    if volume_claim is not None:
        volumes.append({"name": "workspace", "persistentVolumeClaim": {"claimName": volume_claim}})
        mounts.append({"name": "workspace", "mountPath": mount_path})
    if shm_size is not None:
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm_size}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": image_pull_policy,
        "command": ["/bin/sh", "-c", LAUNCH_SCRIPT, "lgmsnet-train"],
        "args": args,
        "ports": [{"name": PORT_NAME, "containerPort": DEFAULT_PORT, "protocol": "TCP"}],
        "resources": resources,
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if container_env:
        container["env"] = container_env
    if mounts:
        container["volumeMounts"] = mounts
    job_labels = {"app.kubernetes.io/name": "lgmsnet", "app.kubernetes.io/component": "train", **(labels or {})}
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "securityContext": {"runAsNonRoot": True, "runAsUser": IMAGE_UID, "runAsGroup": IMAGE_UID,
                            "fsGroup": IMAGE_UID},
    }
    if volumes:
        pod_spec["volumes"] = volumes
    if node_selector:
        pod_spec["nodeSelector"] = dict(node_selector)
    if tolerations:
        pod_spec["tolerations"] = [dict(t) for t in tolerations]
    if service_account is not None:
        pod_spec["serviceAccountName"] = service_account

    def replica(count: int) -> dict[str, Any]:
        template = {"metadata": {"labels": dict(job_labels)}, "spec": json.loads(json.dumps(pod_spec))}
        return {"replicas": count, "restartPolicy": "OnFailure", "template": template}

    replica_specs = {"Master": replica(1)}
    if nodes > 1:
        replica_specs["Worker"] = replica(nodes - 1)
    run_policy: dict[str, Any] = {"cleanPodPolicy": clean_pod_policy, "backoffLimit": backoff_limit}
    if active_deadline_s is not None:
        run_policy["activeDeadlineSeconds"] = active_deadline_s
    if ttl_after_finished_s is not None:
        run_policy["ttlSecondsAfterFinished"] = ttl_after_finished_s
    return {
        "apiVersion": f"{PYTORCHJOB_GROUP}/{PYTORCHJOB_VERSION}",
        "kind": PYTORCHJOB_KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": job_labels},
        "spec": {
            "nprocPerNode": str(nproc_per_node),
            "runPolicy": run_policy,
            "pytorchReplicaSpecs": replica_specs,
        },
    }


def validate_pytorchjob(manifest: Mapping[str, Any], *, sdk: bool = True) -> Any:
    """Check a PyTorchJob against the operator's rules and the SDK model ``KubeflowOrgV1PyTorchJob``.

    Operator rules: ``apiVersion`` ``kubeflow.org/v1``, ``kind`` ``PyTorchJob``, a DNS-1035 name, replica types
    only ``Master`` (exactly 1 replica) and ``Worker``, a container named ``pytorch`` in every replica,
    ``nprocPerNode`` a string, ``runPolicy.cleanPodPolicy`` one of None/Running/All. Then
    :func:`validate_against_sdk` (types, unknown fields, required fields, lossless round trip).

    Args:
        manifest: the job as a dict (e.g. from :func:`pytorchjob_manifest` or ``yaml.safe_load``).
        sdk: also check against the SDK model (needs ``kubeflow-training``); False checks the rules only.

    Returns:
        The ``KubeflowOrgV1PyTorchJob`` object (None when ``sdk`` is False).

    Raises:
        ManifestError: every problem, with its path.
        ModuleNotFoundError: ``kubeflow-training`` is not installed (the message has the install command).
    """
    problems: list[str] = []
    if not isinstance(manifest, Mapping):
        raise ManifestError(f"a PyTorchJob manifest must be a mapping; got {type(manifest).__name__}")
    if manifest.get("apiVersion") != f"{PYTORCHJOB_GROUP}/{PYTORCHJOB_VERSION}":
        problems.append(f"$.apiVersion must be {PYTORCHJOB_GROUP}/{PYTORCHJOB_VERSION}; "
                        f"got {manifest.get('apiVersion')!r}")
    if manifest.get("kind") != PYTORCHJOB_KIND:
        problems.append(f"$.kind must be {PYTORCHJOB_KIND}; got {manifest.get('kind')!r}")
    meta = manifest.get("metadata") or {}
    name = meta.get("name") if isinstance(meta, Mapping) else None
    _check_dns1035(name, "$.metadata.name", problems)
    spec = manifest.get("spec") or {}
    replicas = spec.get("pytorchReplicaSpecs") if isinstance(spec, Mapping) else None
    if not isinstance(replicas, Mapping) or "Master" not in replicas:
        problems.append("$.spec.pytorchReplicaSpecs must have a Master replica (torchrun's rendezvous host)")
        replicas = replicas if isinstance(replicas, Mapping) else {}
    for rtype, rspec in replicas.items():
        where = f"$.spec.pytorchReplicaSpecs.{rtype}"
        if rtype not in _REPLICA_TYPES:
            problems.append(f"{where}: unknown replica type (allowed: {', '.join(_REPLICA_TYPES)})")
        if not isinstance(rspec, Mapping):
            problems.append(f"{where}: expected a mapping")
            continue
        if rtype == "Master" and rspec.get("replicas") != 1:
            problems.append(f"{where}.replicas must be 1; got {rspec.get('replicas')!r}")
        containers = ((rspec.get("template") or {}).get("spec") or {}).get("containers") or []
        if not any(isinstance(c, Mapping) and c.get("name") == CONTAINER_NAME for c in containers):
            problems.append(f"{where}.template.spec.containers must include one named {CONTAINER_NAME!r} "
                            "(the operator configures that container)")
    if isinstance(spec, Mapping) and "nprocPerNode" in spec and not isinstance(spec["nprocPerNode"], str):
        problems.append(f"$.spec.nprocPerNode must be a string ('1', 'auto', 'gpu'); got {spec['nprocPerNode']!r}")
    policy = (spec.get("runPolicy") or {}) if isinstance(spec, Mapping) else {}
    if isinstance(policy, Mapping) and policy.get("cleanPodPolicy", "None") not in CLEAN_POD_POLICIES:
        problems.append(f"$.spec.runPolicy.cleanPodPolicy must be one of {', '.join(CLEAN_POD_POLICIES)}; "
                        f"got {policy.get('cleanPodPolicy')!r}")
    _raise_problems(f"PyTorchJob {name!r}", problems)
    if not sdk:
        return None
    import kubernetes.client.models as k8s_models

    training_models = _sdk_models("kubeflow.training.models", "kubeflow-training==1.9.4")
    return validate_against_sdk(manifest, "KubeflowOrgV1PyTorchJob", [training_models, k8s_models],
                                f"PyTorchJob {name!r}")


def dump_yaml(manifest: Mapping[str, Any]) -> str:
    """The manifest as YAML for ``kubectl apply -f`` (keys in the order built, block style)."""
    return yaml.safe_dump(json.loads(json.dumps(manifest)), sort_keys=False, default_flow_style=False)


# --------------------------------------------------------------------------------------------- submission


def _status_code(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    return int(status) if isinstance(status, int) else None


def _terminal(conditions: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The last condition of type Succeeded/Failed whose status is "True", if any."""
    done = [c for c in conditions if c.get("type") in _TERMINAL and str(c.get("status")) == "True"]
    return done[-1] if done else None


def _describe(condition: Mapping[str, Any] | None) -> str:
    if not condition:
        return "no status condition yet (pods may be pending: check quotas, GPU node pool and image pulls)"
    return (f"{condition.get('type')} (reason: {condition.get('reason') or '-'}, "
            f"message: {condition.get('message') or '-'})")


def submit_and_wait(
    manifest: Mapping[str, Any],
    *,
    custom_objects_api: Any,
    timeout_s: float = 48 * 3600.0,
    poll_s: float = 30.0,
    max_poll_errors: int = 5,
    delete_on_timeout: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Create the PyTorchJob and wait until it succeeds; raise with the operator's message when it does not.

    Args:
        manifest: a PyTorchJob, checked with :func:`validate_pytorchjob` before anything is sent (against the SDK
            model where ``kubeflow-training`` is installed, else the operator's rules only, with a warning).
        custom_objects_api: a ``kubernetes.client.CustomObjectsApi`` (or an object with the same
            ``create_namespaced_custom_object`` / ``get_namespaced_custom_object`` /
            ``delete_namespaced_custom_object`` methods).
        timeout_s: how long to wait for a terminal condition.
        poll_s: seconds between status reads.
        max_poll_errors: consecutive failed status reads (HTTP 5xx/429, connection errors) tolerated.
        delete_on_timeout: delete the job (and so free its GPUs) when ``timeout_s`` passes.
        sleep: the sleep function (tests pass a fake).
        clock: a monotonic clock in seconds (tests pass a fake).

    Returns:
        The name of the job that succeeded.

    Raises:
        ManifestError: the manifest is invalid (nothing was created).
        JobError: the API refused the job (already exists, forbidden, operator not installed ...).
        JobFailedError: the job's ``Failed`` condition, with the operator's reason and message.
        JobTimeoutError: no terminal condition within ``timeout_s`` (the last condition is in the message).
    """
    sdk = sdk_available("kubeflow.training")
    if not sdk:
        log.warning("kubeflow-training is not installed: PyTorchJob checked by the operator's rules only")
    validate_pytorchjob(manifest, sdk=sdk)
    name = str(manifest["metadata"]["name"])
    namespace = str(manifest["metadata"].get("namespace") or "default")
    ids = {"group": PYTORCHJOB_GROUP, "version": PYTORCHJOB_VERSION, "namespace": namespace,
           "plural": PYTORCHJOB_PLURAL}
    try:
        created = custom_objects_api.create_namespaced_custom_object(body=dict(manifest), **ids)
    except Exception as exc:
        code = _status_code(exc)
        hint = {
            409: f"a PyTorchJob named {name!r} already exists in {namespace!r}; delete it "
                 f"(kubectl -n {namespace} delete pytorchjob {name}) or choose another name",
            403: f"the caller may not create pytorchjobs.kubeflow.org in {namespace!r}; grant RBAC 'create' on "
                 "pytorchjobs to its service account",
            404: f"the PyTorchJob resource is not served in {namespace!r}; install the Kubeflow Training Operator "
                 "(v1) or check the namespace",
        }.get(code or 0, "check the API server and the manifest")
        reason = getattr(exc, "reason", None) or str(exc)[:300]
        raise JobError(f"could not create PyTorchJob {namespace}/{name} (HTTP {code or '-'}: {reason}): {hint}.",
                       name=name, namespace=namespace) from exc
    if isinstance(created, Mapping):
        name = str((created.get("metadata") or {}).get("name") or name)
    log.info("created PyTorchJob %s/%s; waiting up to %.0f s", namespace, name, timeout_s)

    deadline = clock() + timeout_s
    last: Mapping[str, Any] | None = None
    errors = 0
    while True:
        try:
            job = custom_objects_api.get_namespaced_custom_object(name=name, **ids)
            errors = 0
        except Exception as exc:
            code = _status_code(exc)
            errors += 1
            if (code is not None and code < 500 and code != 429) or errors > max_poll_errors:
                raise JobError(f"could not read the status of PyTorchJob {namespace}/{name} "
                               f"(HTTP {code or '-'}, {errors} consecutive failure(s)): {str(exc)[:300]}. "
                               f"The job may still run: kubectl -n {namespace} get pytorchjob {name}",
                               name=name, namespace=namespace, condition=last) from exc
            log.warning("reading PyTorchJob %s/%s failed (%s); retry %d/%d", namespace, name, exc, errors,
                        max_poll_errors)
            job = None
        if job is not None:
            conditions = [c for c in ((job.get("status") or {}).get("conditions") or []) if isinstance(c, Mapping)]
            if conditions and conditions[-1] != last:
                last = conditions[-1]
                log.info("PyTorchJob %s/%s: %s", namespace, name, _describe(last))
            done = _terminal(conditions)
            if done is not None and done.get("type") == "Succeeded":
                log.info("PyTorchJob %s/%s succeeded", namespace, name)
                return name
            if done is not None:
                raise JobFailedError(
                    f"PyTorchJob {namespace}/{name} failed: {_describe(done)}. Logs: kubectl -n {namespace} logs "
                    f"{name}-master-0 (and {name}-worker-N); events: kubectl -n {namespace} describe pytorchjob {name}",
                    name=name, namespace=namespace, condition=done)
        remaining = deadline - clock()
        if remaining <= 0:
            if delete_on_timeout:
                try:
                    custom_objects_api.delete_namespaced_custom_object(name=name, **ids)
                    action = "it was deleted"
                except Exception as exc:  # noqa: BLE001 - the timeout is the error to report
                    action = f"deleting it failed ({str(exc)[:200]}): kubectl -n {namespace} delete pytorchjob {name}"
            else:
                action = f"it was left running: kubectl -n {namespace} delete pytorchjob {name} to stop it"
            raise JobTimeoutError(
                f"PyTorchJob {namespace}/{name} did not finish within {timeout_s:.0f} s; last condition: "
                f"{_describe(last)}; {action}.", name=name, namespace=namespace, condition=last)
        sleep(min(poll_s, remaining))
