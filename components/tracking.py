"""Experiment tracking with MLflow: a metric writer for the trainer, run artifacts, dataset versions.

* :class:`MLflowWriter` implements :class:`lgmsnet.engine.MetricWriter` (pass it to
  ``lgmsnet.engine.train(..., writers=[writer])``): flattened params, per-epoch metrics with the epoch as step,
  and system tags (torch/python/package versions, device, host name, git commit). Used as a context manager the
  run ends ``FINISHED``, or ``FAILED`` (with the error as a tag) when the block raises.
* :func:`log_run_artifacts` uploads what a training run folder holds: the resolved config, learning curves
  (PNG drawn from ``metrics.csv``), ``summary.json``/``splits.json``, evaluation outputs (``metrics.json``,
  ``per_image.csv``, overlays) and the dataset version (tags + an MLflow dataset input).

Tracking URIs: ``sqlite:///PATH/mlflow.db`` (embedded, artifacts next to the database; the default is
``./mlflow.db``) or a team server ``http(s)://HOST:PORT`` (``mlflow server`` with PostgreSQL and S3, see
``docs/registry.md``). Against a server every function first checks ``/health`` with bounded retries and raises
:class:`TrackingError` naming the URI when it cannot be reached, before anything is written. MLflow's own HTTP
retries are bounded the same way (:class:`TrackingSettings`) unless ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` /
``MLFLOW_HTTP_REQUEST_TIMEOUT`` / ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`` are set, which then win.

mlflow and matplotlib are imported here, at the point of use; :mod:`lgmsnet` never imports this module.
"""

from __future__ import annotations

import csv
import getpass
import json
import logging
import math
import os
import platform
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlparse

from lgmsnet.config import flatten_dict

__all__ = [
    "DEFAULT_EXPERIMENT",
    "DatasetVersion",
    "MLflowWriter",
    "RunArtifacts",
    "TrackingError",
    "TrackingSettings",
    "bounded_http",
    "check_tracking_server",
    "client",
    "default_tracking_uri",
    "ensure_experiment",
    "git_info",
    "learning_curves_png",
    "log_dataset_version",
    "log_run_artifacts",
    "resolve_tracking_uri",
    "set_run_tags",
    "system_tags",
    "translate_errors",
]

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "lgmsnet"
_MAX_PARAM_LEN = 6000  # MLflow's limit for a param value
_MAX_TAG_LEN = 8000  # MLflow's limit for a run tag value
_BATCH = 100  # MLflow accepts at most 100 params/tags per log_batch (1000 metrics)
_PACKAGES = (
    "torch", "numpy", "mlflow", "albumentations", "opencv-python-headless", "pillow", "onnx", "onnxruntime",
    "kfp", "dvc", "great-expectations",
)


class TrackingError(RuntimeError):
    """The tracking server cannot be reached or refused a request; the message names the URI and the fix."""


# ------------------------------------------------------------------------------------------- connection


@dataclass(frozen=True)
class TrackingSettings:
    """Bounded client-side retries for an MLflow tracking server.

    Attributes:
        max_retries: retries of one HTTP request (MLflow's ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, default there 7).
        backoff_factor: exponential backoff factor in seconds (``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``, there 2).
        timeout_s: connect/read timeout of one request (``MLFLOW_HTTP_REQUEST_TIMEOUT``, there 120).
        health_timeout_s: timeout of one ``/health`` probe before work starts.
    """

    max_retries: int = 2
    backoff_factor: int = 1
    timeout_s: int = 30
    health_timeout_s: float = 3.0

    def __post_init__(self) -> None:
        for key in ("max_retries", "backoff_factor", "timeout_s"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if key == "timeout_s" else 0):
                raise ValueError(f"TrackingSettings.{key} must be a non-negative int (timeout_s >= 1); got {value!r}.")
        if not self.health_timeout_s > 0:
            raise ValueError(f"TrackingSettings.health_timeout_s must be > 0; got {self.health_timeout_s!r}.")

    def env(self) -> dict[str, str]:
        """The MLflow environment variables these settings stand for."""
        return {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.max_retries),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(self.backoff_factor),
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.timeout_s),
        }


_ENV_LOCK = threading.Lock()
_ENV_DEPTH = 0
_ENV_SET: list[str] = []


@contextmanager
def bounded_http(settings: TrackingSettings | None = None) -> Iterator[None]:
    """Bound MLflow's HTTP retries/timeouts inside the block (variables the user has set are left alone).

    MLflow reads these only from the environment, so they are set for the block and removed afterwards;
    nested and concurrent blocks share one setting (the first block's) and the last one out restores.
    """
    global _ENV_DEPTH
    wanted = (settings or TrackingSettings()).env()
    with _ENV_LOCK:
        if _ENV_DEPTH == 0:
            _ENV_SET.clear()
            for key, value in wanted.items():
                if key not in os.environ:
                    os.environ[key] = value
                    _ENV_SET.append(key)
        _ENV_DEPTH += 1
    try:
        yield
    finally:
        with _ENV_LOCK:
            _ENV_DEPTH -= 1
            if _ENV_DEPTH == 0:
                for key in _ENV_SET:
                    os.environ.pop(key, None)
                _ENV_SET.clear()


def default_tracking_uri(root: str | os.PathLike[str] = ".") -> str:
    """The embedded store: ``sqlite:///<root>/mlflow.db`` (artifacts go to ``<root>/mlartifacts``)."""
    return f"sqlite:///{(Path(root) / 'mlflow.db').resolve()}"


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """``tracking_uri``, else ``MLFLOW_TRACKING_URI``, else :func:`default_tracking_uri` of the working folder."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    scheme = urlparse(uri).scheme
    if scheme not in ("http", "https", "sqlite", "postgresql", "mysql", "file", "") and "+" not in scheme:
        raise ValueError(
            f"tracking URI {uri!r} has the unsupported scheme {scheme!r}; use http(s)://HOST:PORT for a server or "
            "sqlite:///PATH/mlflow.db for the embedded store."
        )
    return uri


def _is_http(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https")


def check_tracking_server(tracking_uri: str, settings: TrackingSettings | None = None) -> None:
    """Probe ``<uri>/health`` with bounded retries; a no-op for database and file URIs.

    Raises:
        TrackingError: no healthy answer after ``max_retries + 1`` attempts (the message names the URI).
    """
    if not _is_http(tracking_uri):
        return
    import requests

    cfg = settings or TrackingSettings()
    url = tracking_uri.rstrip("/") + "/health"
    attempts = cfg.max_retries + 1
    started = time.monotonic()
    last = ""
    for attempt in range(attempts):
        try:
            response = requests.get(url, timeout=cfg.health_timeout_s)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last = f"{type(exc).__name__}: {exc}"
        if attempt + 1 < attempts:
            delay = cfg.backoff_factor * 2**attempt
            log.warning("tracking server %s not healthy (%s); retry %d/%d in %ss", tracking_uri, last, attempt + 1,
                        cfg.max_retries, delay)
            time.sleep(delay)
    raise TrackingError(
        f"MLflow tracking server {tracking_uri} is unreachable: {attempts} attempt(s) in "
        f"{time.monotonic() - started:.1f} s, last error: {last}. Nothing was written. Start the server or point "
        "MLFLOW_TRACKING_URI (--tracking-uri) at a running one; retries are bounded by TrackingSettings / "
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES and MLFLOW_HTTP_REQUEST_TIMEOUT."
    )


def _is_connection_error(exc: BaseException) -> bool:
    import requests

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
            return True
        text = str(cur)
        # MLflow wraps transport failures as "API request to URL failed with [timeout ]exception ..."; an HTTP
        # error status ("failed with error code 403") is an answer, not a connection problem
        if "API request to" in text and ("failed with exception" in text or "failed with timeout exception" in text):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


@contextmanager
def translate_errors(tracking_uri: str, action: str) -> Iterator[None]:
    """Turn connection failures inside the block into :class:`TrackingError` naming the URI and ``action``."""
    try:
        yield
    except TrackingError:
        raise
    except Exception as exc:
        if _is_connection_error(exc):
            raise TrackingError(
                f"could not {action}: the MLflow tracking server {tracking_uri} stopped answering "
                f"({type(exc).__name__}: {str(exc)[:300]}). Check the server and retry; the operation is idempotent."
            ) from exc
        raise


def client(tracking_uri: str | None = None) -> Any:
    """An ``MlflowClient`` whose tracking and registry URIs are both ``tracking_uri``."""
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _default_artifact_location(tracking_uri: str) -> str | None:
    """For the embedded SQLite store, artifacts go next to the database (``<db dir>/mlartifacts``)."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme == "sqlite" and tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        return (db.parent / "mlartifacts").resolve().as_uri()
    return None


def ensure_experiment(mlflow_client: Any, name: str, tracking_uri: str) -> str:
    """The id of experiment ``name``, created when missing (race-safe)."""
    from mlflow.exceptions import MlflowException

    exp = mlflow_client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise ValueError(
                f"experiment {name!r} is deleted at {tracking_uri}; restore it (mlflow experiments restore) or "
                "choose another experiment name."
            )
        return exp.experiment_id
    try:
        return mlflow_client.create_experiment(name, artifact_location=_default_artifact_location(tracking_uri))
    except MlflowException as exc:
        exp = mlflow_client.get_experiment_by_name(name)
        if exp is None:
            raise
        log.debug("experiment %s created concurrently (%s)", name, exc.error_code)
        return exp.experiment_id


# ------------------------------------------------------------------------------------------- system info


def _git(args: Sequence[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_info(path: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """``{"commit", "dirty", "branch"}`` of the git checkout holding ``path`` (default: this project); empty if none."""
    cwd = Path(path) if path is not None else Path(__file__).resolve().parents[1]
    commit = _git(["rev-parse", "HEAD"], cwd)
    if not commit:
        return {}
    info = {"commit": commit}
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    if status is not None:
        info["dirty"] = "true" if status else "false"
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
    if branch:
        info["branch"] = branch
    return info


def _package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in _PACKAGES:
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return found


def system_tags(device: str | None = None) -> dict[str, str]:
    """Tags describing where a run ran: versions, device, host name, git commit, user."""
    import torch

    import lgmsnet

    tags = {
        "lgmsnet.version": lgmsnet.__version__,
        "torch.version": torch.__version__,
        "python.version": platform.python_version(),
        "host.name": socket.gethostname(),
        "host.platform": platform.platform(),
        "packages": json.dumps(_package_versions(), sort_keys=True),
        "mlflow.user": getpass.getuser(),
    }
    if device:
        tags["device"] = device
        if device.startswith("cuda") and torch.cuda.is_available():
            tags["device.name"] = torch.cuda.get_device_name(torch.device(device))
    git = git_info()
    if git:
        tags["git.commit"] = git["commit"]
        tags["mlflow.source.git.commit"] = git["commit"]
        for key in ("dirty", "branch"):
            if key in git:
                tags[f"git.{key}"] = git[key]
    return tags


# ------------------------------------------------------------------------------------------- dataset version


@dataclass(frozen=True)
class DatasetVersion:
    """Which data a model was trained on.

    Attributes:
        name: a short dataset name (e.g. ``kvasir-seg``).
        source: where the data lives (DVC remote URL, path, bucket prefix).
        md5: DVC's directory hash (the ``md5`` of the ``.dvc`` file's out, without ``.dir``); None when untracked.
        fingerprint: :func:`lgmsnet.data.dataset_fingerprint` of the files, when computed.
        synthetic: the data is synthetic (not medical images).
        licence: licence/terms of use, when recorded.
        n_files: files in the version, when known.
    """

    name: str
    source: str
    md5: str | None = None
    fingerprint: str | None = None
    synthetic: bool = False
    licence: str | None = None
    n_files: int | None = None

    @property
    def digest(self) -> str:
        """A short content id: the DVC md5, else the first 32 hex digits of the fingerprint, else ``unversioned``."""
        return self.md5 or (self.fingerprint[:32] if self.fingerprint else "unversioned")

    def to_tags(self, prefix: str = "dataset.") -> dict[str, str]:
        """String tags (``dataset.name``, ``dataset.md5``, …) for runs and model versions."""
        out = {f"{prefix}{k}": str(v) for k, v in asdict(self).items() if v is not None}
        out[f"{prefix}synthetic"] = "true" if self.synthetic else "false"
        out[f"{prefix}digest"] = self.digest
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        return {**asdict(self), "digest": self.digest}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetVersion:
        """Inverse of :meth:`to_dict` (unknown keys are an error naming them)."""
        allowed = {"name", "source", "md5", "fingerprint", "synthetic", "licence", "n_files"}
        unknown = sorted(set(data) - allowed - {"digest"})
        if unknown:
            raise ValueError(f"unknown dataset version key(s) {unknown}; allowed: {sorted(allowed)}.")
        missing = [k for k in ("name", "source") if not data.get(k)]
        if missing:
            raise ValueError(f"dataset version lacks {missing}; give at least name and source.")
        return cls(**{k: v for k, v in data.items() if k in allowed})

    @classmethod
    def from_dvc(
        cls, dvc_file: str | os.PathLike[str], *, name: str | None = None, source: str | None = None
    ) -> DatasetVersion:
        """Read the version of a DVC-tracked folder from its ``.dvc`` file (``outs[0].md5`` ending in ``.dir``).

        Args:
            dvc_file: the ``.dvc`` file written by ``dvc add``.
            name: dataset name (default: the out's path).
            source: where the data lives (default: the DVC remote URL from ``dvc.api.get_url`` when DVC can resolve
                it, else the folder's absolute path).

        Raises:
            ValueError: the file is missing, not YAML, or has no directory out with an md5.
        """
        import yaml

        path = Path(dvc_file)
        if not path.is_file():
            raise ValueError(f"DVC file {path} does not exist; run `dvc add DATA_DIR` first (it writes DATA_DIR.dvc).")
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"DVC file {path} is not valid YAML: {exc}") from exc
        outs = doc.get("outs") if isinstance(doc, dict) else None
        if not outs or not isinstance(outs[0], dict) or not outs[0].get("md5"):
            raise ValueError(f"DVC file {path} has no `outs: [{{md5: ..., path: ...}}]` entry; re-run `dvc add`.")
        out = outs[0]
        md5 = str(out["md5"]).removesuffix(".dir")
        data_dir = (path.parent / str(out.get("path", path.stem))).resolve()
        if source is None:
            source = _dvc_url(data_dir) or str(data_dir)
        info = _dataset_info(data_dir)
        return cls(
            name=name or str(out.get("path", path.stem)),
            source=source,
            md5=md5,
            synthetic=bool(info.get("synthetic", False)),
            licence=_licence_text(info, data_dir),
            n_files=int(out["nfiles"]) if isinstance(out.get("nfiles"), int) else None,
        )

    @classmethod
    def from_folder(
        cls, data_dir: str | os.PathLike[str], *, name: str | None = None, source: str | None = None
    ) -> DatasetVersion:
        """Describe an untracked folder dataset by its content fingerprint (slower: hashes every file)."""
        from lgmsnet.data import dataset_fingerprint

        root = Path(data_dir).resolve()
        info = _dataset_info(root)
        return cls(
            name=name or root.name,
            source=source or str(root),
            fingerprint=dataset_fingerprint(root),
            synthetic=bool(info.get("synthetic", False)),
            licence=_licence_text(info, root),
        )


def _dvc_url(data_dir: Path) -> str | None:
    try:
        import dvc.api

        return str(dvc.api.get_url(str(data_dir)))
    except Exception as exc:  # noqa: BLE001 - no remote configured, no DVC repo, dvc not installed: fall back
        log.debug("no DVC remote URL for %s: %s", data_dir, exc)
        return None


def _dataset_info(data_dir: Path) -> dict[str, Any]:
    from lgmsnet.data import load_dataset_info

    try:
        return load_dataset_info(data_dir) if data_dir.is_dir() else {}
    except Exception as exc:  # noqa: BLE001 - provenance is informative only
        log.warning("cannot read %s/dataset.yaml: %s", data_dir, exc)
        return {}


def _licence_text(info: Mapping[str, Any], data_dir: Path | None = None) -> str | None:
    """Licence/terms from ``dataset.yaml`` keys, else the terms lines of ``PROVENANCE.md``; synthetic data says so."""
    for key in ("licence", "license", "terms", "terms_of_use"):
        if info.get(key):
            return str(info[key])
    if info.get("synthetic"):
        return "synthetic data generated by lgmsnet.data.synthetic (no third-party licence; not medical images)"
    if data_dir is not None and (data_dir / "PROVENANCE.md").is_file():
        lines = (data_dir / "PROVENANCE.md").read_text(encoding="utf-8", errors="replace").splitlines()
        picked = [ln.strip(" -*") for ln in lines if any(w in ln.lower() for w in ("licen", "terms", "commercial"))]
        if picked:
            return " ".join(picked)[:1000]
    return None


def log_dataset_version(run_id: str, version: DatasetVersion, *, tracking_uri: str | None = None,
                        context: str = "training") -> None:
    """Record ``version`` on a run: ``dataset.*`` tags and an MLflow dataset input (a metadata-only dataset)."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    uri = resolve_tracking_uri(tracking_uri)
    try:
        source = resolve_dataset_source(version.source)
    except Exception:  # noqa: BLE001 - an unknown scheme: describe it as a plain URL
        from mlflow.data.http_dataset_source import HTTPDatasetSource

        source = HTTPDatasetSource(version.source)
    dataset = MetaDataset(source=source, name=version.name, digest=version.digest[:36])
    tags = [InputTag(key="mlflow.data.context", value=context)]
    tags += [InputTag(key=k, value=v[:500]) for k, v in version.to_tags("lgmsnet.").items()]
    c = client(uri)
    c.log_inputs(run_id, datasets=[DatasetInput(dataset=dataset._to_mlflow_entity(), tags=tags)])
    set_run_tags(c, run_id, version.to_tags())


# ------------------------------------------------------------------------------------------- writer


def _param_value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)
    return text if len(text) <= _MAX_PARAM_LEN else text[: _MAX_PARAM_LEN - 3] + "..."


def set_run_tags(mlflow_client: Any, run_id: str, tags: Mapping[str, str]) -> None:
    """Set many run tags in batches of 100 (values cut to MLflow's 8000-character limit)."""
    from mlflow.entities import RunTag

    items = [RunTag(k, str(v)[:_MAX_TAG_LEN]) for k, v in tags.items()]
    for start in range(0, len(items), _BATCH):
        mlflow_client.log_batch(run_id, tags=items[start : start + _BATCH])


class MLflowWriter:
    """A :class:`lgmsnet.engine.MetricWriter` that records a training run in MLflow.

    The run is created at construction (so :attr:`run_id` is known before training starts). As a context manager
    the run ends ``FINISHED`` on success, ``KILLED`` on ``KeyboardInterrupt`` and ``FAILED`` on any other
    exception, with the error in the tag ``lgmsnet.error``::

        with MLflowWriter(uri, "kvasir") as writer:
            result = train(cfg, run_dir, writers=[writer])
            log_run_artifacts(writer.run_id, run_dir, tracking_uri=uri)

    Args:
        tracking_uri: MLflow tracking URI (None: ``MLFLOW_TRACKING_URI``, else ``./mlflow.db``).
        experiment: experiment name (created when missing).
        run_name: display name of the run.
        tags: extra run tags.
        device: the training device (tagged; also read from the ``train.device`` param when logged).
        strict: raise :class:`TrackingError` when metrics cannot be sent; False (default) logs a warning and
            keeps training (the CSV/JSON-lines writers still hold every epoch).
        settings: bounded retries and timeouts.

    Raises:
        TrackingError: the tracking server is unreachable when the run is created.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        *,
        device: str | None = None,
        strict: bool = False,
        settings: TrackingSettings | None = None,
    ) -> None:
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.settings = settings or TrackingSettings()
        self.strict = strict
        self.dropped = 0
        self._ended = False
        with self._guard("create a run"):
            check_tracking_server(self.tracking_uri, self.settings)
            self._client = client(self.tracking_uri)
            self.experiment_id = ensure_experiment(self._client, experiment, self.tracking_uri)
            all_tags = {**system_tags(device), **dict(tags or {})}
            run = self._client.create_run(self.experiment_id, run_name=run_name, tags={
                k: str(v)[:_MAX_TAG_LEN] for k, v in all_tags.items()
            })
        self.run_id: str = run.info.run_id
        self._params: dict[str, str] = {}
        log.info("MLflow run %s in experiment %r at %s", self.run_id, experiment, self.tracking_uri)

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        with bounded_http(getattr(self, "settings", None)), translate_errors(self.tracking_uri, action):
            yield

    def _send(self, action: str, fn: Any, *args: Any, **kwargs: Any) -> None:
        try:
            with self._guard(action):
                fn(*args, **kwargs)
        except TrackingError:
            if self.strict:
                raise
            self.dropped += 1
            log.warning("MLflow: could not %s for run %s; continuing (metrics.csv keeps the values)", action,
                        self.run_id, exc_info=log.isEnabledFor(logging.DEBUG))

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log the flattened params once; on resume, changed values are kept as ``param_override.*`` tags."""
        from mlflow.entities import Param

        flat = {k: _param_value(v) for k, v in flatten_dict(params).items()}
        try:
            with self._guard("read the run's params"):
                existing = dict(self._client.get_run(self.run_id).data.params)
        except TrackingError:
            if self.strict:
                raise
            self.dropped += 1
            log.warning("MLflow: could not log the params of run %s; continuing", self.run_id)
            return
        new = {k: v for k, v in flat.items() if k not in existing}
        changed = {k: v for k, v in flat.items() if k in existing and existing[k] != v}
        items = [Param(k, v) for k, v in new.items()]
        for start in range(0, len(items), _BATCH):
            self._send("log params", self._client.log_batch, self.run_id, params=items[start : start + _BATCH])
        if changed:
            log.warning("params changed on resume (kept as tags): %s", sorted(changed))
            self._send("tag changed params", set_run_tags, self._client, self.run_id,
                       {f"param_override.{k}": v for k, v in changed.items()})
        device = flat.get("train.device")
        if device and "device" not in existing:
            self._send("tag the device", self._client.set_tag, self.run_id, "device", device)
        self._params.update(flat)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log one epoch's numeric metrics with ``step`` (non-numeric values are skipped)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = []
        for key, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            items.append(Metric(key, float(value), now, int(step)))
        if items:
            self._send(f"log metrics of step {step}", self._client.log_batch, self.run_id, metrics=items)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Add run tags."""
        self._send("set tags", set_run_tags, self._client, self.run_id, tags)

    def close(self) -> None:
        """End the run ``FINISHED`` (idempotent; called by the trainer after the last epoch)."""
        self.end("FINISHED")

    def end(self, status: str = "FINISHED", error: BaseException | None = None) -> None:
        """End the run with ``status`` (``FINISHED``, ``FAILED`` or ``KILLED``); ``error`` is tagged."""
        if status not in ("FINISHED", "FAILED", "KILLED"):
            raise ValueError(f"status must be FINISHED, FAILED or KILLED; received {status!r}.")
        if self._ended and status == "FINISHED":
            return
        if error is not None:
            self._send("tag the error", self._client.set_tag, self.run_id, "lgmsnet.error",
                       f"{type(error).__name__}: {error}"[:_MAX_TAG_LEN])
        self._send(f"end the run as {status}", self._client.set_terminated, self.run_id, status)
        self._ended = True
        if self.dropped:
            log.warning("MLflow run %s: %d request(s) could not be sent", self.run_id, self.dropped)

    def __enter__(self) -> MLflowWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.end("FINISHED")
        else:
            self.end("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED", error=exc)


# ------------------------------------------------------------------------------------------- run artifacts


@dataclass
class RunArtifacts:
    """What :func:`log_run_artifacts` uploaded (artifact paths within the run)."""

    run_id: str
    artifacts: list[str] = field(default_factory=list)
    learning_curves: str | None = None
    dataset: DatasetVersion | None = None


def learning_curves_png(metrics_csv: str | os.PathLike[str], out_png: str | os.PathLike[str]) -> Path:
    """Draw the training loss and validation metrics per epoch from ``metrics.csv`` (matplotlib, Agg canvas).

    Raises:
        ValueError: the CSV has no ``step`` column or no rows.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with Path(metrics_csv).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "step" not in rows[0]:
        raise ValueError(f"{metrics_csv} has no rows or no 'step' column; it is written by lgmsnet.engine.train.")

    def series(key: str) -> tuple[list[float], list[float]]:
        xs, ys = [], []
        for row in rows:
            try:
                y = float(row.get(key, ""))
            except ValueError:
                continue
            if math.isfinite(y):
                xs.append(float(row["step"]))
                ys.append(y)
        return xs, ys

    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_val = fig.subplots(1, 2)
    ax_loss.plot(*series("train_loss"), marker="o", label="train loss")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="training loss")
    ax_loss.grid(alpha=0.3)
    for key in ("val_dice", "val_iou", "val_sensitivity", "val_precision"):
        xs, ys = series(key)
        if xs:
            ax_val.plot(xs, ys, marker="o", label=key.removeprefix("val_"))
    ax_val.set(xlabel="epoch", ylabel="score", title="validation (per-image mean)", ylim=(0, 1))
    ax_val.grid(alpha=0.3)
    if ax_val.lines:
        ax_val.legend(loc="lower right")
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def _eval_files(folder: Path) -> list[Path]:
    names = ("metrics.json", "per_image.csv", "summary.json", "summary.md")
    files = [folder / n for n in names if (folder / n).is_file()]
    overlays = folder / "overlays"
    if overlays.is_dir():
        files += sorted(p for p in overlays.iterdir() if p.suffix.lower() == ".png")
    return files


def log_run_artifacts(
    run_id: str,
    run_dir: str | os.PathLike[str],
    *,
    tracking_uri: str | None = None,
    eval_dirs: Mapping[str, str | os.PathLike[str]] | None = None,
    dataset_version: DatasetVersion | None = None,
    settings: TrackingSettings | None = None,
) -> RunArtifacts:
    """Upload a training run folder's results to an MLflow run.

    Uploads (artifact path in the run): ``config/config.yaml`` (the resolved config), ``training/metrics.csv``,
    ``training/summary.json``, ``training/splits.json``, ``plots/learning_curves.png``, every evaluation folder
    (``RUN_DIR/test`` as ``evaluation/test`` plus ``eval_dirs``: ``metrics.json``, ``per_image.csv``,
    ``summary.{json,md}``, ``overlays/*.png``, and one level of sub-folders for zero-shot targets), the dataset
    version (tags and dataset input) and the git commit tag.

    Args:
        run_id: the MLflow run.
        run_dir: the folder written by :func:`lgmsnet.engine.train`.
        tracking_uri: MLflow tracking URI.
        eval_dirs: ``{name: folder}`` of :func:`lgmsnet.evaluation.evaluate` / ``zero_shot`` outputs.
        dataset_version: the training data version (default: read from the run's checkpoint data info and
            ``dataset.yaml`` when the folder still exists).
        settings: bounded retries and timeouts.

    Returns:
        :class:`RunArtifacts`.

    Raises:
        FileNotFoundError: ``run_dir`` or an eval folder does not exist.
        TrackingError: the tracking server is unreachable.
    """
    import tempfile

    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"run folder {run} does not exist; pass the --out folder of `lgmsnet train`.")
    folders = {"test": run / "test"} if (run / "test").is_dir() else {}
    for name, folder in (eval_dirs or {}).items():
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"evaluation folder {folder} ({name!r}) does not exist.")
        folders[name] = Path(folder)
    uri = resolve_tracking_uri(tracking_uri)
    result = RunArtifacts(run_id=run_id)
    with bounded_http(settings), translate_errors(uri, f"upload the artifacts of run {run_id}"):
        check_tracking_server(uri, settings)
        c = client(uri)
        c.get_run(run_id)  # a wrong run id fails here, before any upload

        def upload(path: Path, artifact_dir: str) -> None:
            c.log_artifact(run_id, str(path), artifact_dir)
            result.artifacts.append(f"{artifact_dir}/{path.name}")

        if (run / "config.yaml").is_file():
            upload(run / "config.yaml", "config")
        for fname in ("metrics.csv", "metrics.jsonl", "summary.json", "splits.json"):
            if (run / fname).is_file():
                upload(run / fname, "training")
        if (run / "metrics.csv").is_file():
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    png = learning_curves_png(run / "metrics.csv", Path(tmp) / "learning_curves.png")
                except ValueError as exc:
                    log.warning("no learning curves: %s", exc)
                else:
                    upload(png, "plots")
                    result.learning_curves = "plots/learning_curves.png"
        for name, folder in folders.items():
            for path in _eval_files(folder):
                sub = "overlays" if path.parent.name == "overlays" else ""
                upload(path, "/".join(filter(None, ["evaluation", name, sub])))
            for child in sorted(p for p in folder.iterdir() if p.is_dir() and p.name != "overlays"):
                for path in _eval_files(child):
                    sub = "overlays" if path.parent.name == "overlays" else ""
                    upload(path, "/".join(filter(None, ["evaluation", name, child.name, sub])))
        version = dataset_version or _dataset_from_run(run)
        if version is not None:
            log_dataset_version(run_id, version, tracking_uri=uri)
            result.dataset = version
        git = git_info()
        if git:
            set_run_tags(c, run_id, {"git.commit": git["commit"], "mlflow.source.git.commit": git["commit"]})
    log.info("uploaded %d artifact(s) to run %s", len(result.artifacts), run_id)
    return result


def _dataset_from_run(run: Path) -> DatasetVersion | None:
    """The data version recorded by the trainer (``summary.json`` ``data`` block), if any."""
    summary = run / "summary.json"
    if not summary.is_file():
        return None
    data = json.loads(summary.read_text(encoding="utf-8")).get("data") or {}
    if not data.get("fingerprint"):
        return None
    path = Path(str(data.get("path", "")))
    info = _dataset_info(path) if path.is_dir() else {}
    return DatasetVersion(
        name=path.name or "dataset",
        source=str(path),
        fingerprint=str(data["fingerprint"]),
        synthetic=bool(data.get("synthetic", info.get("synthetic", False))),
        licence=_licence_text(info, path if path.is_dir() else None),
    )
