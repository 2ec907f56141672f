"""A governed MLflow model registry: gated registration, approved promotion, rollback, status.

The workflow, for a registered model ``NAME``:

1. :func:`register_candidate` records the gate decision (:func:`components.gate.decide`) on the training run.
   A **failing** candidate is not registered (the run's tags say why). A **passing** one becomes a new model
   version (tags: run id, dataset version, gate verdict/reasons/policy, metrics; a model card linked) and takes
   the alias ``challenger``. Idempotent: a run already registered under ``NAME`` returns its version; a
   registration interrupted half-way is completed on the next call.
2. A reviewer reads :func:`status` and calls :func:`promote` (version, approver, reason): the alias
   ``champion`` moves only to a version that passed the gate and finished registration. The approval (who, why,
   when, previous champion) is recorded as version tags and as one ``history.NNNNNN`` JSON tag per event on the
   registered model.
3. :func:`rollback` moves ``champion`` back to the version it replaced, recorded the same way.

**Concurrency.** Promotion, rollback and registration of one model run under a registry-side lock: a registered
model named ``NAME.lock`` (:data:`LOCK_SUFFIX`), whose creation is atomic in every MLflow backend (model names are
unique). A second caller waits for the lock (``lock_timeout_s``), then re-reads the champion, so the history is a
consistent chain; with ``expected_champion`` set, a caller whose view is stale fails with
:class:`ConcurrentPromotionError` instead of overriding a decision it has not seen. After moving an alias the
registry is read back and checked. A lock left by a crashed process is broken after ``stale_lock_s``.

**Failures.** Against a tracking server, the server is probed first with bounded retries
(:class:`components.tracking.TrackingSettings`); unreachable → :class:`components.tracking.TrackingError`
naming the URI, before anything is written. A failure after a version was created deletes that version again
(best effort); if even that fails the version stays without ``registry.complete=true``, :func:`promote` refuses
it and the next :func:`register_candidate` for the run completes it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components import tracking
from components.gate import GateDecision, GatePolicy, decide
from components.model_card import build_model_card, render_markdown, write_model_card
from components.tracking import DatasetVersion, TrackingSettings

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

__all__ = [
    "ALIAS_CHALLENGER",
    "ALIAS_CHAMPION",
    "LOCK_SUFFIX",
    "UNCHECKED",
    "ConcurrentPromotionError",
    "PromotionRecord",
    "PromotionRefused",
    "RegistryError",
    "RegistryStatus",
    "VersionInfo",
    "champion_metrics",
    "evaluate_candidate",
    "measure_latency_ms",
    "promote",
    "register_candidate",
    "rollback",
    "status",
]

log = logging.getLogger(__name__)

ALIAS_CHAMPION = "champion"
ALIAS_CHALLENGER = "challenger"
LOCK_SUFFIX = ".lock"
HISTORY_PREFIX = "history."

# tag keys (model versions; the gate/registry ones also go on the run)
T_PASSED = "gate.passed"
T_REASONS = "gate.reasons"
T_DECISION = "gate.decision"
T_SUMMARY = "gate.summary"
T_POLICY_VERSION = "gate.policy_version"
T_POLICY_DIGEST = "gate.policy_digest"
T_RUN_ID = "run_id"
T_METRICS = "metrics"
T_COMPLETE = "registry.complete"
T_CARD = "model_card"
T_APPROVER = "promotion.approved_by"
T_REASON = "promotion.reason"
T_APPROVED_AT = "promotion.approved_at"
T_PREVIOUS = "promotion.previous_champion"
T_EVENT = "promotion.event"


class _Unchecked:
    """Sentinel type of :data:`UNCHECKED`."""

    def __repr__(self) -> str:
        return "UNCHECKED"


UNCHECKED: Any = _Unchecked()
"""Default of ``expected_champion``: promote/rollback whatever the current champion is."""
_RUN_TAG_MAX = 8000


class RegistryError(RuntimeError):
    """A registry operation cannot be done as asked; the message names the model/version and the fix."""


class PromotionRefused(RegistryError):
    """The version may not become champion (gate not passed, registration incomplete, unknown version, ...)."""


class ConcurrentPromotionError(RegistryError):
    """Another promotion/rollback changed (or holds) the registry state this call relied on."""


# --------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class PromotionRecord:
    """One champion change (or a no-op when the version already was champion).

    Attributes:
        name: registered model name.
        event: ``"promote"`` or ``"rollback"``.
        version: the new champion.
        previous: the champion it replaced (None when there was none).
        approver: who approved.
        reason: why.
        at: ISO time (UTC).
        seq: position in the model's history (0 when nothing changed).
        changed: False when ``version`` already was champion.
    """

    name: str
    event: str
    version: str
    previous: str | None
    approver: str
    reason: str
    at: str
    seq: int = 0
    changed: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


@dataclass(frozen=True)
class VersionInfo:
    """A model version as the reviewer sees it."""

    version: str
    run_id: str | None
    aliases: list[str]
    gate_passed: bool
    complete: bool
    gate_summary: str
    metrics: dict[str, float]
    dataset: dict[str, str]
    approved_by: str | None = None
    approved_at: str | None = None
    model_card: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


@dataclass(frozen=True)
class RegistryStatus:
    """Champion, challenger and promotion history of a registered model."""

    name: str
    champion: VersionInfo | None
    challenger: VersionInfo | None
    history: list[PromotionRecord]
    versions: list[VersionInfo] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for ``--json``)."""
        return {
            "name": self.name,
            "champion": self.champion.to_dict() if self.champion else None,
            "challenger": self.challenger.to_dict() if self.challenger else None,
            "history": [h.to_dict() for h in self.history],
            "versions": [v.to_dict() for v in self.versions],
        }

    def format(self) -> str:
        """A readable summary for reviewers."""

        def one(label: str, v: VersionInfo | None) -> str:
            if v is None:
                return f"{label}: none"
            dice = v.metrics.get("in_domain.dice")
            return (f"{label}: version {v.version} (run {v.run_id}, gate {'passed' if v.gate_passed else 'FAILED'}"
                    + (f", in-domain Dice {dice:.4f}" if dice is not None else "")
                    + (f", data {v.dataset.get('dataset.digest')}" if v.dataset.get("dataset.digest") else "") + ")")

        lines = [f"registered model {self.name}", one("champion", self.champion), one("challenger", self.challenger)]
        lines.append(f"versions: {', '.join(v.version for v in self.versions) or 'none'}")
        lines.append("history:" if self.history else "history: no promotion yet")
        for h in self.history:
            lines.append(f"  #{h.seq} {h.at} {h.event}: {h.previous or '-'} -> {h.version} by {h.approver}: {h.reason}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------- helpers


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _error_code(exc: BaseException) -> str:
    return str(getattr(exc, "error_code", ""))


@contextmanager
def _session(tracking_uri: str | None, settings: TrackingSettings | None, action: str) -> Iterator[tuple[Any, str]]:
    """Resolve the URI, bound HTTP retries, probe the server, translate connection errors; yield (client, uri)."""
    uri = tracking.resolve_tracking_uri(tracking_uri)
    with tracking.bounded_http(settings), tracking.translate_errors(uri, action):
        tracking.check_tracking_server(uri, settings)
        yield tracking.client(uri), uri


def _require_model(c: Any, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return c.get_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in _error_code(exc) or "NOT_FOUND" in _error_code(exc):
            raise RegistryError(
                f"registered model {name!r} does not exist; register a passing candidate first "
                "(components.registry.register_candidate / `lgmsnet registry register`)."
            ) from exc
        raise


def _get_version(c: Any, name: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return c.get_model_version(name, str(version))
    except MlflowException as exc:
        versions = sorted((str(mv.version) for mv in c.search_model_versions(f"name='{name}'")), key=int)
        raise PromotionRefused(
            f"model {name!r} has no version {version!r} (versions: {', '.join(versions) or 'none'}); "
            "check `lgmsnet registry status NAME`."
        ) from exc


def _metrics_of(mv: Any) -> dict[str, float]:
    try:
        return {k: float(v) for k, v in json.loads(mv.tags.get(T_METRICS, "{}")).items()}
    except (ValueError, TypeError):
        return {}


def _version_info(mv: Any, aliases: Mapping[str, str]) -> VersionInfo:
    tags = dict(mv.tags)
    return VersionInfo(
        version=str(mv.version),
        run_id=mv.run_id or tags.get(T_RUN_ID),
        aliases=sorted(a for a, v in aliases.items() if str(v) == str(mv.version)),
        gate_passed=tags.get(T_PASSED) == "true",
        complete=tags.get(T_COMPLETE) == "true",
        gate_summary=tags.get(T_SUMMARY, ""),
        metrics=_metrics_of(mv),
        dataset={k: v for k, v in tags.items() if k.startswith("dataset.")},
        approved_by=tags.get(T_APPROVER),
        approved_at=tags.get(T_APPROVED_AT),
        model_card=tags.get(T_CARD),
    )


def _history(model: Any) -> list[PromotionRecord]:
    events = []
    for key, value in model.tags.items():
        if key.startswith(HISTORY_PREFIX):
            try:
                events.append(PromotionRecord(**json.loads(value)))
            except (TypeError, ValueError):
                log.warning("ignoring malformed history tag %s on %s", key, model.name)
    return sorted(events, key=lambda e: e.seq)


def _aliases(model: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (model.aliases or {}).items()}


class _ModelLock:
    """A registry-side mutex for one registered model (see the module docstring)."""

    def __init__(self, c: Any, name: str, owner: str, timeout_s: float, stale_s: float) -> None:
        self.c = c
        self.name = name
        self.lock_name = f"{name}{LOCK_SUFFIX}"
        self.owner = owner
        self.timeout_s = timeout_s
        self.stale_s = stale_s
        self.token = uuid.uuid4().hex

    def __enter__(self) -> _ModelLock:
        from mlflow.exceptions import MlflowException

        deadline = time.monotonic() + self.timeout_s
        delay = 0.05
        while True:
            try:
                self.c.create_registered_model(
                    self.lock_name,
                    tags={"lgmsnet.lock": "true", "lgmsnet.lock.for": self.name, "lgmsnet.lock.owner": self.owner,
                          "lgmsnet.lock.token": self.token, "lgmsnet.lock.acquired_at": f"{time.time():.3f}"},
                    description=f"Lock held while the registry of {self.name!r} changes; removed automatically.",
                )
                return self
            except MlflowException as exc:
                if not any(code in _error_code(exc) for code in ("ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST")):
                    raise
            holder = self._holder()
            if holder and time.time() - float(holder.get("lgmsnet.lock.acquired_at", "inf")) > self.stale_s:
                log.warning("breaking the stale registry lock %s held by %s since %s", self.lock_name,
                            holder.get("lgmsnet.lock.owner"), holder.get("lgmsnet.lock.acquired_at"))
                self._delete_if(holder.get("lgmsnet.lock.token"))
                continue
            if time.monotonic() > deadline:
                who = holder.get("lgmsnet.lock.owner", "unknown") if holder else "unknown"
                raise ConcurrentPromotionError(
                    f"registered model {self.name!r} is busy: another promotion, rollback or registration (by "
                    f"{who}) holds the lock {self.lock_name!r} for more than {self.timeout_s:g} s. Retry later; if no "
                    f"such operation is running, delete the registered model {self.lock_name!r}."
                )
            time.sleep(delay + random.uniform(0, delay))
            delay = min(delay * 2, 0.5)

    def _holder(self) -> dict[str, str] | None:
        from mlflow.exceptions import MlflowException

        try:
            return dict(self.c.get_registered_model(self.lock_name).tags)
        except MlflowException:
            return None

    def _delete_if(self, token: str | None) -> None:
        from mlflow.exceptions import MlflowException

        holder = self._holder()
        if holder is None or holder.get("lgmsnet.lock.token") != token:
            return
        try:
            self.c.delete_registered_model(self.lock_name)
        except MlflowException as exc:
            log.debug("lock %s already gone: %s", self.lock_name, exc)

    def __exit__(self, *exc: object) -> None:
        try:
            self._delete_if(self.token)
        except Exception:  # noqa: BLE001 - never mask the operation's own error; the lock goes stale
            log.warning("could not release the registry lock %s; it is broken after %g s", self.lock_name,
                        self.stale_s, exc_info=True)


def _next_seq(model: Any) -> int:
    seqs = [int(k.removeprefix(HISTORY_PREFIX)) for k in model.tags if k.startswith(HISTORY_PREFIX)
            and k.removeprefix(HISTORY_PREFIX).isdigit()]
    return max(seqs, default=0) + 1


# --------------------------------------------------------------------------------------------- gate inputs


def champion_metrics(name: str, *, tracking_uri: str | None = None,
                     settings: TrackingSettings | None = None) -> dict[str, float] | None:
    """The metrics recorded on the current ``champion`` version, or None when there is no champion (or model)."""
    from mlflow.exceptions import MlflowException

    with _session(tracking_uri, settings, f"read the champion of {name!r}") as (c, _):
        try:
            model = c.get_registered_model(name)
        except MlflowException:
            return None
        version = _aliases(model).get(ALIAS_CHAMPION)
        if version is None:
            return None
        return _metrics_of(c.get_model_version(name, version))


def evaluate_candidate(metrics: Mapping[str, float], name: str, policy: GatePolicy, *,
                       tracking_uri: str | None = None, settings: TrackingSettings | None = None) -> GateDecision:
    """:func:`components.gate.decide` against the registry's current champion of ``name``."""
    return decide(metrics, champion_metrics(name, tracking_uri=tracking_uri, settings=settings), policy)


def measure_latency_ms(checkpoint: str | os.PathLike[str], image_size: int = 256, *, device: str = "cpu",
                       repeats: int = 10, warmup: int = 2) -> float:
    """Median latency (ms) of one ``image_size²`` image through the inference-optimised model (for ``latency_ms``)."""
    import torch

    from lgmsnet.checkpoint import model_from_checkpoint
    from lgmsnet.inference import optimize_for_inference

    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0; received {repeats}, {warmup}.")
    model = optimize_for_inference(model_from_checkpoint(checkpoint)).to(device)
    x = torch.randn(1, getattr(model, "in_channels", 3), image_size, image_size, device=device)
    if getattr(model, "spatial_dims", 2) == 2:
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000)
    return float(sorted(times)[len(times) // 2])


# --------------------------------------------------------------------------------------------- registration


def _decision_tags(decision: GateDecision, limit: int | None = None) -> dict[str, str]:
    tags = {
        T_PASSED: "true" if decision.passed else "false",
        T_REASONS: json.dumps(decision.reasons),
        T_SUMMARY: decision.message,
        T_DECISION: json.dumps(decision.to_dict(), default=str),
        T_POLICY_VERSION: str(decision.policy_version),
        T_POLICY_DIGEST: decision.policy_digest,
    }
    if limit:
        tags = {k: v if len(v) <= limit else v[: limit - 3] + "..." for k, v in tags.items()}
    return tags


def _serving_info(model_location: str, tracking_uri: str) -> dict[str, Any]:
    """The model's ``serving.json`` (architecture, image size policy) for the card; empty when unavailable."""
    import mlflow

    from components.mlflow_model import DATA_DIR, SERVING_FILE

    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{model_location.rstrip('/')}/data/{DATA_DIR}/{SERVING_FILE}", dst_path=tmp,
                tracking_uri=tracking_uri,
            )
            return json.loads(Path(path).read_text(encoding="utf-8"))
    except Exception as exc:  # noqa: BLE001 - the card then says n/a
        log.warning("no serving.json in %s for the model card: %s", model_location, exc)
        return {}


def _log_card(c: Any, uri: str, run_id: str, name: str, version: str | None, decision: GateDecision,
              metrics: Mapping[str, float], dataset: DatasetVersion | None,
              model_location: str | None) -> tuple[str, str]:
    """Write the card, upload it under ``model_card/<v N | candidate>/``; returns (artifact dir, markdown)."""
    model_info = _serving_info(model_location, uri) if model_location else {}
    card = build_model_card(name=name, version=version, run_id=run_id, metrics=metrics, decision=decision,
                            dataset=dataset.to_dict() if dataset else None, model=model_info)
    artifact_dir = f"model_card/{'v' + version if version else 'candidate'}"
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_model_card(card, tmp):
            c.log_artifact(run_id, str(path), artifact_dir)
    return artifact_dir, render_markdown(card)


def _model_id_of(c: Any, run: Any) -> str:
    from components.mlflow_model import MODEL_ID_TAG

    model_id = run.data.tags.get(MODEL_ID_TAG)
    if model_id:
        return str(model_id)
    outputs = getattr(run, "outputs", None)
    ids = [o.model_id for o in (outputs.model_outputs if outputs else [])]
    if ids:
        return str(ids[-1])
    raise RegistryError(
        f"run {run.info.run_id} has no logged model; log it first with components.mlflow_model.log_model(run_id, "
        "checkpoint) and register again."
    )


def register_candidate(
    tracking_uri: str | None,
    run_id: str,
    name: str,
    decision: GateDecision,
    metrics: Mapping[str, float],
    dataset_version: DatasetVersion | None,
    *,
    settings: TrackingSettings | None = None,
    lock_timeout_s: float = 60.0,
    stale_lock_s: float = 600.0,
) -> ModelVersion | None:
    """Register a gated candidate: a new version with alias ``challenger`` if it passed, nothing if it failed.

    Args:
        tracking_uri: MLflow tracking URI (None: ``MLFLOW_TRACKING_URI``, else ``./mlflow.db``).
        run_id: the training run; its model must be logged (:func:`components.mlflow_model.log_model`).
        name: registered model name.
        decision: :func:`components.gate.decide` result for ``metrics``.
        metrics: the metrics the gate saw (recorded on the version).
        dataset_version: the training data version (recorded on the version and in the card).
        settings: bounded retries/timeouts.
        lock_timeout_s: how long to wait for the registry lock of ``name``.
        stale_lock_s: age after which a lock left by a crashed process is broken.

    Returns:
        The ``mlflow.entities.model_registry.ModelVersion`` (new, or the existing one of this run), or None when
        the candidate failed the gate.

    Raises:
        RegistryError: the run has no logged model, or the run does not exist.
        TrackingError: the tracking server is unreachable (nothing written) or failed mid-way (the created
            version is removed again; if that is impossible it stays incomplete and unpromotable).
    """
    from mlflow.exceptions import MlflowException

    if not name or "/" in name or ":" in name or name.endswith(LOCK_SUFFIX):
        raise ValueError(f"model name {name!r} is invalid: it must be non-empty, without '/' or ':', and not end "
                         f"with {LOCK_SUFFIX!r} (reserved for registry locks).")
    with _session(tracking_uri, settings, f"register run {run_id} as {name!r}") as (c, uri):
        try:
            run = c.get_run(run_id)
        except MlflowException as exc:
            raise RegistryError(
                f"run {run_id!r} does not exist at {uri}; pass the run id of the training run."
            ) from exc
        metric_tags = {f"metric.{k}": f"{float(v):.6g}" for k, v in metrics.items()}
        tracking.set_run_tags(c, run_id, {**_decision_tags(decision, _RUN_TAG_MAX), **metric_tags})
        if dataset_version is not None:
            tracking.set_run_tags(c, run_id, dataset_version.to_tags())
        if not decision.passed:
            card_dir, _ = _log_card(c, uri, run_id, name, None, decision, metrics, dataset_version, None)
            tracking.set_run_tags(c, run_id, {"registry.status": "rejected", "registry.model": name,
                                           "registry.rejection": decision.message[:_RUN_TAG_MAX],
                                           T_CARD: f"runs:/{run_id}/{card_dir}"})
            log.warning("run %s not registered as %r: %s", run_id, name, decision.message)
            return None
        model_id = _model_id_of(c, run)
        try:
            c.create_registered_model(name, description="LGMSNet segmentation model (governed: see model cards).")
        except MlflowException as exc:
            if "ALREADY_EXISTS" not in _error_code(exc):
                raise
        with _ModelLock(c, name, f"register {run_id}", lock_timeout_s, stale_lock_s):
            existing = c.search_model_versions(f"name='{name}' and run_id='{run_id}'")
            done = [mv for mv in existing if mv.tags.get(T_COMPLETE) == "true"]
            if done:
                mv = sorted(done, key=lambda m: int(m.version))[0]
                log.info("run %s is already registered as %s version %s; nothing to do", run_id, name, mv.version)
                return mv
            tags = {
                **_decision_tags(decision),
                T_RUN_ID: run_id,
                T_METRICS: json.dumps({k: float(v) for k, v in metrics.items()}, sort_keys=True),
                **metric_tags,
                **(dataset_version.to_tags() if dataset_version else {}),
            }
            if existing:
                mv = sorted(existing, key=lambda m: int(m.version))[0]
                log.warning("completing the interrupted registration of %s version %s", name, mv.version)
                for key, value in tags.items():  # this decision's record, whatever the first attempt wrote
                    c.set_model_version_tag(name, mv.version, key, value)
                created = False
            else:
                # the logged model's storage location, not "models:/<id>": the SQL registry store resolves the
                # latter through the process-wide tracking URI rather than this client's
                source = c.get_logged_model(model_id).artifact_location
                mv = c.create_model_version(name, source=source, run_id=run_id, tags=tags,
                                            description=decision.message[:900], model_id=model_id)
                created = True
            try:
                card_dir, markdown = _log_card(c, uri, run_id, name, str(mv.version), decision, metrics,
                                               dataset_version, c.get_logged_model(model_id).artifact_location)
                c.set_model_version_tag(name, mv.version, T_CARD, f"runs:/{run_id}/{card_dir}")
                c.update_model_version(name, mv.version, description=(
                    f"Model card: runs:/{run_id}/{card_dir}/model_card.md\n\n{markdown}")[:4900])
                c.set_registered_model_alias(name, ALIAS_CHALLENGER, mv.version)
                c.set_model_version_tag(name, mv.version, T_COMPLETE, "true")
                tracking.set_run_tags(c, run_id, {
                    "registry.status": "registered", "registry.model": name, "registry.version": str(mv.version),
                    T_CARD: f"runs:/{run_id}/{card_dir}",
                })
            except BaseException:
                if created:
                    _delete_quietly(c, name, str(mv.version))
                raise
            log.info("registered run %s as %s version %s (alias %s)", run_id, name, mv.version, ALIAS_CHALLENGER)
            return c.get_model_version(name, mv.version)


def _delete_quietly(c: Any, name: str, version: str) -> None:
    try:
        c.delete_model_version(name, version)
        log.warning("removed the half-registered %s version %s", name, version)
    except Exception:  # noqa: BLE001 - the original error is what matters; the version stays incomplete
        log.error("could not remove the half-registered %s version %s; it stays without %s=true and cannot be "
                  "promoted; registering the run again completes it", name, version, T_COMPLETE)


# --------------------------------------------------------------------------------------------- promotion


def _check_promotable(mv: Any, name: str) -> None:
    tags = dict(mv.tags)
    if tags.get(T_PASSED) != "true":
        reasons = tags.get(T_REASONS, "[]")
        raise PromotionRefused(
            f"version {mv.version} of {name!r} did not pass the quality gate (gate.passed="
            f"{tags.get(T_PASSED, 'unset')}; reasons: {reasons}); only gated versions can become {ALIAS_CHAMPION!r}. "
            "Register a candidate that passes the policy."
        )
    if tags.get(T_COMPLETE) != "true":
        raise PromotionRefused(
            f"version {mv.version} of {name!r} has an incomplete registration ({T_COMPLETE} not set); run the "
            f"registration of run {mv.run_id} again to complete it, then promote."
        )


def _change_champion(c: Any, name: str, target: str, event: str, approver: str, reason: str,
                     expected_champion: Any) -> PromotionRecord:
    """Inside the lock: move ``champion`` to ``target``, verify, record. ``expected_champion`` UNCHECKED = no check."""
    model = c.get_registered_model(name)
    current = _aliases(model).get(ALIAS_CHAMPION)
    expected = None if expected_champion is None else str(expected_champion)
    if expected_champion is not UNCHECKED and current != expected:
        raise ConcurrentPromotionError(
            f"the champion of {name!r} is now {current or 'none'}, not {expected_champion or 'none'} as this "
            f"{event} expected: another promotion or rollback happened first. Check `lgmsnet registry status "
            f"{name}` and decide again."
        )
    at = _now()
    if current == target:
        log.info("version %s already is the champion of %s; nothing to do", target, name)
        return PromotionRecord(name, event, target, current, approver, reason, at, seq=0, changed=False)
    seq = _next_seq(model)
    record = PromotionRecord(name, event, target, current, approver, reason, at, seq=seq)
    for key, value in {T_APPROVER: approver, T_REASON: reason, T_APPROVED_AT: at,
                       T_PREVIOUS: current or "", T_EVENT: event}.items():
        c.set_model_version_tag(name, target, key, value)
    c.set_registered_model_alias(name, ALIAS_CHAMPION, target)
    try:
        now = _aliases(c.get_registered_model(name)).get(ALIAS_CHAMPION)
        if now != target:
            raise ConcurrentPromotionError(
                f"after moving {ALIAS_CHAMPION!r} of {name!r} to version {target} the registry shows {now}: it was "
                "changed outside this workflow (UI or API) meanwhile. Check `lgmsnet registry status` and decide "
                "again."
            )
        c.set_registered_model_tag(name, f"{HISTORY_PREFIX}{seq:06d}", json.dumps(record.to_dict()))
    except BaseException:
        _restore_alias(c, name, current, target)
        raise
    if _aliases(model).get(ALIAS_CHALLENGER) == target:
        c.delete_registered_model_alias(name, ALIAS_CHALLENGER)
    log.info("%s: %s %s -> %s approved by %s (%s)", name, event, current or "none", target, approver, reason)
    return record


def _restore_alias(c: Any, name: str, previous: str | None, target: str) -> None:
    try:
        if _aliases(c.get_registered_model(name)).get(ALIAS_CHAMPION) != target:
            return  # someone else moved it; do not fight
        if previous is None:
            c.delete_registered_model_alias(name, ALIAS_CHAMPION)
        else:
            c.set_registered_model_alias(name, ALIAS_CHAMPION, previous)
    except Exception:  # noqa: BLE001
        log.error("could not restore %s of %s to %s; check `lgmsnet registry status`", ALIAS_CHAMPION, name,
                  previous)


def _check_person(approver: str, reason: str) -> None:
    missing = [k for k, v in (("approver", approver), ("reason", reason)) if not str(v or "").strip()]
    if missing:
        raise ValueError(f"{' and '.join(missing)} must be given (who approves, and why); received "
                         f"approver={approver!r}, reason={reason!r}.")


def promote(
    name: str,
    version: str | int,
    approver: str,
    reason: str,
    *,
    tracking_uri: str | None = None,
    expected_champion: Any = UNCHECKED,
    settings: TrackingSettings | None = None,
    lock_timeout_s: float = 60.0,
    stale_lock_s: float = 600.0,
) -> PromotionRecord:
    """Move the ``champion`` alias to ``version`` after a reviewer's approval.

    Args:
        name: registered model name.
        version: the version to promote; it must have passed the gate and finished registration.
        approver: who approves (recorded).
        reason: why (recorded).
        tracking_uri: MLflow tracking URI.
        expected_champion: when given (a version, or None for "no champion"), the promotion fails with
            :class:`ConcurrentPromotionError` if the champion is different when the lock is held (compare-and-set).
        settings: bounded retries/timeouts.
        lock_timeout_s: how long to wait for the registry lock of ``name``.
        stale_lock_s: age after which a lock left by a crashed process is broken.

    Returns:
        :class:`PromotionRecord` (``changed=False`` when ``version`` already was champion).

    Raises:
        ValueError: empty approver or reason.
        PromotionRefused: unknown version, gate not passed, or registration incomplete.
        ConcurrentPromotionError: lock busy past ``lock_timeout_s``, ``expected_champion`` stale, or the alias
            changed outside this workflow.
        TrackingError: server unreachable.
    """
    _check_person(approver, reason)
    version = str(version)
    with _session(tracking_uri, settings, f"promote {name!r} version {version}") as (c, _):
        _require_model(c, name)
        _check_promotable(_get_version(c, name, version), name)
        with _ModelLock(c, name, f"promote v{version} by {approver}", lock_timeout_s, stale_lock_s):
            _check_promotable(_get_version(c, name, version), name)  # re-read under the lock
            return _change_champion(c, name, version, "promote", approver, reason, expected_champion)


def rollback(
    name: str,
    *,
    approver: str | None = None,
    reason: str = "rollback",
    tracking_uri: str | None = None,
    expected_champion: Any = UNCHECKED,
    settings: TrackingSettings | None = None,
    lock_timeout_s: float = 60.0,
    stale_lock_s: float = 600.0,
) -> PromotionRecord:
    """Return ``champion`` to the version the current champion replaced (its last promotion's previous champion).

    Repeated rollbacks walk further back (v3 → v2 → v1): the target is always the predecessor recorded when the
    current champion was last *promoted*.

    Args:
        name: registered model name.
        approver: who decided (default: the local user name).
        reason: why.
        tracking_uri: MLflow tracking URI.
        expected_champion: as for :func:`promote` (compare-and-set on the current champion).
        settings: bounded retries/timeouts.
        lock_timeout_s: how long to wait for the registry lock of ``name``.
        stale_lock_s: age after which a lock left by a crashed process is broken.

    Returns:
        :class:`PromotionRecord` with ``event="rollback"``.

    Raises:
        RegistryError: no champion, or no earlier champion to return to.
        PromotionRefused: the earlier version was deleted or no longer passes the checks.
        ConcurrentPromotionError, TrackingError: as for :func:`promote`.
    """
    import getpass

    who = approver or getpass.getuser()
    _check_person(who, reason)
    with _session(tracking_uri, settings, f"roll back {name!r}") as (c, _):
        _require_model(c, name)
        with _ModelLock(c, name, f"rollback by {who}", lock_timeout_s, stale_lock_s):
            model = c.get_registered_model(name)
            current = _aliases(model).get(ALIAS_CHAMPION)
            if current is None:
                raise RegistryError(f"{name!r} has no champion; there is nothing to roll back.")
            promotions = [h for h in _history(model) if h.event == "promote" and h.version == current]
            target = promotions[-1].previous if promotions else None
            if not target:
                raise RegistryError(
                    f"champion version {current} of {name!r} has no earlier champion recorded (it was the first); "
                    "promote another gated version instead."
                )
            _check_promotable(_get_version(c, name, target), name)
            return _change_champion(c, name, target, "rollback", who, reason, expected_champion)


def status(name: str, *, tracking_uri: str | None = None, settings: TrackingSettings | None = None) -> RegistryStatus:
    """Champion, challenger, all versions and the promotion history of ``name``.

    Raises:
        RegistryError: no such registered model.
        TrackingError: server unreachable.
    """
    with _session(tracking_uri, settings, f"read the status of {name!r}") as (c, _):
        model = _require_model(c, name)
        aliases = _aliases(model)
        versions = sorted(c.search_model_versions(f"name='{name}'"), key=lambda mv: int(mv.version))
        infos = {str(mv.version): _version_info(mv, aliases) for mv in versions}
        return RegistryStatus(
            name=name,
            champion=infos.get(aliases.get(ALIAS_CHAMPION, "")),
            challenger=infos.get(aliases.get(ALIAS_CHALLENGER, "")),
            history=_history(model),
            versions=list(infos.values()),
        )

