"""The quality gate: pure logic deciding whether a candidate model may enter the registry.

``decide(candidate, champion, policy) -> GateDecision`` compares flat ``{metric name: value}`` dicts. It imports
nothing from MLflow and does no I/O; :mod:`components.registry` records its result. Two kinds of criteria, both
read from a versioned policy file (``policies/gate.yaml``, see :func:`load_policy`):

* **thresholds**: absolute bounds on the candidate (``min`` and/or ``max``), e.g. in-domain Dice ≥ 0.70,
  zero-shot Dice on each target ≥ 0.45, parameters ≤ 2.5 M, latency ≤ 250 ms;
* **comparisons**: non-inferiority against the current champion with an explicit direction: for
  ``direction: higher`` the candidate passes when ``candidate >= champion - margin``, for ``lower`` when
  ``candidate <= champion + margin`` (``margin`` in the metric's units, or a fraction of the champion's value when
  ``relative: true``). Without a champion these are skipped and the decision says so.

A metric the candidate lacks (or holds as NaN/non-number) fails its criterion with a named reason. A metric the
champion lacks fails the comparison too (``on_missing_champion_metric: fail``, the default: non-inferiority cannot
be shown) or is skipped with a note (``skip``). Every failed criterion is listed in one message
(:attr:`GateDecision.message`).

Metric names used by the default policy (see :func:`metrics_from_reports`): ``in_domain.dice``,
``in_domain.iou``, ``zero_shot.<target>.dice``, ``model.parameters``, ``latency_ms``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "POLICY_VERSION",
    "Check",
    "Comparison",
    "GateDecision",
    "GatePolicy",
    "PolicyError",
    "Threshold",
    "decide",
    "format_checks",
    "load_policy",
    "metrics_from_reports",
    "policy_from_dict",
]

POLICY_VERSION = 1
"""The policy file format this module reads (``version: 1``)."""

Direction = Literal["higher", "lower"]
_DIRECTIONS = ("higher", "lower")
_TOP_KEYS = ("version", "name", "description", "thresholds", "comparisons", "on_missing_champion_metric")
_THRESHOLD_KEYS = ("metric", "min", "max", "description")
_COMPARISON_KEYS = ("metric", "direction", "margin", "relative", "description")
_ON_MISSING = ("fail", "skip")


class PolicyError(ValueError):
    """The gate policy file is missing or invalid; the message lists every bad key and what is allowed."""


# --------------------------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class Threshold:
    """An absolute bound on one candidate metric (``min <= value <= max``; either side optional)."""

    metric: str
    min: float | None = None
    max: float | None = None
    description: str = ""


@dataclass(frozen=True)
class Comparison:
    """Non-inferiority of one metric against the champion.

    Attributes:
        metric: metric name.
        direction: ``"higher"`` (larger is better) or ``"lower"``.
        margin: tolerated loss (>= 0): metric units, or a fraction of the champion's value when ``relative``.
        relative: interpret ``margin`` as a fraction of ``|champion value|``.
    """

    metric: str
    direction: Direction
    margin: float = 0.0
    relative: bool = False
    description: str = ""

    def bound(self, champion_value: float) -> float:
        """The worst candidate value still accepted against ``champion_value``."""
        slack = self.margin * abs(champion_value) if self.relative else self.margin
        return champion_value - slack if self.direction == "higher" else champion_value + slack


@dataclass(frozen=True)
class GatePolicy:
    """A versioned gate policy.

    Attributes:
        version: file format version (1).
        thresholds: absolute criteria.
        comparisons: champion comparisons.
        on_missing_champion_metric: ``"fail"`` or ``"skip"`` a comparison the champion has no value for.
        name, description: free text recorded with each decision.
        digest: sha256 of the canonical policy content (recorded with each decision; set by the loader).
        source: where the policy came from (file path or ``"<dict>"``).
    """

    version: int = POLICY_VERSION
    thresholds: tuple[Threshold, ...] = ()
    comparisons: tuple[Comparison, ...] = ()
    on_missing_champion_metric: Literal["fail", "skip"] = "fail"
    name: str = ""
    description: str = ""
    digest: str = ""
    source: str = "<dict>"

    def to_dict(self) -> dict[str, Any]:
        """The policy as plain data (the file's content, without ``digest``/``source``)."""
        return _canonical(self)


def _canonical(policy: GatePolicy) -> dict[str, Any]:
    return {
        "version": policy.version,
        "name": policy.name,
        "description": policy.description,
        "on_missing_champion_metric": policy.on_missing_champion_metric,
        "thresholds": [asdict(t) for t in policy.thresholds],
        "comparisons": [asdict(c) for c in policy.comparisons],
    }


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def policy_from_dict(data: Any, source: str = "<dict>") -> GatePolicy:
    """Validate a policy mapping (the parsed YAML) and build a :class:`GatePolicy`.

    Raises:
        PolicyError: every problem at once: unknown keys (with the allowed ones), a wrong version, a threshold
            without bounds or with ``min > max``, an unknown direction, a negative margin, a duplicate metric.
    """
    if not isinstance(data, Mapping):
        raise PolicyError(
            f"gate policy {source} must be a mapping with keys {list(_TOP_KEYS)}; got {type(data).__name__}."
        )
    errors: list[str] = []
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        errors.append(f"unknown key(s) {unknown}; allowed: {list(_TOP_KEYS)}")
    version = data.get("version")
    if version != POLICY_VERSION or isinstance(version, bool):
        errors.append(f"'version' must be {POLICY_VERSION} (the format this lgmsnet reads); got {version!r}")
    on_missing = data.get("on_missing_champion_metric", "fail")
    if on_missing not in _ON_MISSING:
        errors.append(f"'on_missing_champion_metric' must be one of {list(_ON_MISSING)}; got {on_missing!r}")

    thresholds: list[Threshold] = []
    raw_thresholds = data.get("thresholds", []) or []
    if not isinstance(raw_thresholds, list):
        errors.append(f"'thresholds' must be a list of {{metric, min and/or max}}; got {type(raw_thresholds).__name__}")
        raw_thresholds = []
    for i, item in enumerate(raw_thresholds):
        where = f"thresholds[{i}]"
        if not isinstance(item, Mapping):
            errors.append(f"{where} must be a mapping with keys {list(_THRESHOLD_KEYS)}; got {item!r}")
            continue
        bad = sorted(set(item) - set(_THRESHOLD_KEYS))
        if bad:
            errors.append(f"{where}: unknown key(s) {bad}; allowed: {list(_THRESHOLD_KEYS)}")
        metric = item.get("metric")
        if not isinstance(metric, str) or not metric.strip():
            errors.append(f"{where}.metric must be a non-empty metric name; got {metric!r}")
            metric = ""
        low, high = item.get("min"), item.get("max")
        if low is None and high is None:
            errors.append(f"{where} ({metric}): give 'min' and/or 'max'")
        for key, value in (("min", low), ("max", high)):
            if value is not None and not _number(value):
                errors.append(f"{where}.{key} ({metric}) must be a finite number; got {value!r}")
        if _number(low) and _number(high) and low > high:
            errors.append(f"{where} ({metric}): min {low} > max {high}")
        thresholds.append(Threshold(metric, _float(low), _float(high), str(item.get("description", ""))))

    comparisons: list[Comparison] = []
    raw_comparisons = data.get("comparisons", []) or []
    if not isinstance(raw_comparisons, list):
        errors.append(
            f"'comparisons' must be a list of {{metric, direction, margin}}; got {type(raw_comparisons).__name__}"
        )
        raw_comparisons = []
    seen: set[str] = set()
    for i, item in enumerate(raw_comparisons):
        where = f"comparisons[{i}]"
        if not isinstance(item, Mapping):
            errors.append(f"{where} must be a mapping with keys {list(_COMPARISON_KEYS)}; got {item!r}")
            continue
        bad = sorted(set(item) - set(_COMPARISON_KEYS))
        if bad:
            errors.append(f"{where}: unknown key(s) {bad}; allowed: {list(_COMPARISON_KEYS)}")
        metric = item.get("metric")
        if not isinstance(metric, str) or not metric.strip():
            errors.append(f"{where}.metric must be a non-empty metric name; got {metric!r}")
            metric = ""
        elif metric in seen:
            errors.append(f"{where}: metric {metric!r} is compared twice; keep one entry")
        seen.add(str(metric))
        direction = item.get("direction")
        if direction not in _DIRECTIONS:
            errors.append(f"{where}.direction ({metric}) must be one of {list(_DIRECTIONS)}; got {direction!r}")
        margin = item.get("margin", 0.0)
        if not _number(margin) or margin < 0:
            errors.append(f"{where}.margin ({metric}) must be a number >= 0; got {margin!r}")
        relative = item.get("relative", False)
        if not isinstance(relative, bool):
            errors.append(f"{where}.relative ({metric}) must be true or false; got {relative!r}")
        comparisons.append(
            Comparison(str(metric), direction if direction in _DIRECTIONS else "higher",  # type: ignore[arg-type]
                       _float(margin) or 0.0, bool(relative), str(item.get("description", "")))
        )
    if not thresholds and not comparisons and not errors:
        errors.append("the policy has no 'thresholds' and no 'comparisons'; a gate that checks nothing is refused")
    if errors:
        raise PolicyError(f"invalid gate policy {source}: " + "; ".join(errors) + ".")
    policy = GatePolicy(
        version=POLICY_VERSION,
        thresholds=tuple(thresholds),
        comparisons=tuple(comparisons),
        on_missing_champion_metric=on_missing,
        name=str(data.get("name", "")),
        description=str(data.get("description", "")),
        source=source,
    )
    digest = hashlib.sha256(json.dumps(_canonical(policy), sort_keys=True).encode()).hexdigest()
    return replace(policy, digest=digest)


def _float(value: Any) -> float | None:
    return float(value) if _number(value) else None


def load_policy(path: str | os.PathLike[str]) -> GatePolicy:
    """Read and validate a gate policy YAML file (``policies/gate.yaml``).

    Raises:
        PolicyError: the file is missing, not YAML, or invalid (every bad key named, see :func:`policy_from_dict`).
    """
    import yaml

    file = Path(path)
    if not file.is_file():
        raise PolicyError(
            f"gate policy {file} does not exist; pass the versioned policy file, e.g. policies/gate.yaml."
        )
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PolicyError(f"gate policy {file} is not valid YAML: {exc}") from exc
    return policy_from_dict(data, source=str(file))


# --------------------------------------------------------------------------------------------- decision


@dataclass(frozen=True)
class Check:
    """The outcome of one criterion.

    Attributes:
        name: a readable criterion, e.g. ``"in_domain.dice >= 0.7"``.
        metric: the metric compared.
        kind: ``"threshold"`` or ``"comparison"``.
        status: ``"passed"``, ``"failed"`` or ``"skipped"``.
        candidate: the candidate's value (None when missing).
        bound: the limit it was held to (threshold, or champion value ∓ margin).
        champion: the champion's value for comparisons.
        reason: why it failed or was skipped (empty when passed).
    """

    name: str
    metric: str
    kind: Literal["threshold", "comparison"]
    status: Literal["passed", "failed", "skipped"]
    candidate: float | None = None
    bound: float | None = None
    champion: float | None = None
    reason: str = ""

    @property
    def passed(self) -> bool:
        """True unless the check failed (a skipped check does not block)."""
        return self.status != "failed"


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict.

    Attributes:
        passed: every check passed or was skipped.
        reasons: one line per failed criterion (empty when passed).
        checks: every check, in policy order (thresholds, then comparisons).
        notes: informational lines (no champion, skipped comparisons).
        policy_version, policy_digest, policy_name: which policy decided.
    """

    passed: bool
    reasons: list[str]
    checks: list[Check]
    notes: list[str] = field(default_factory=list)
    policy_version: int = POLICY_VERSION
    policy_digest: str = ""
    policy_name: str = ""

    @property
    def message(self) -> str:
        """One message: the verdict and every failed criterion."""
        n = len(self.checks)
        if self.passed:
            head = f"quality gate PASSED ({n} check(s))"
            return head + (": " + "; ".join(self.notes) if self.notes else "")
        listed = "; ".join(f"({i}) {r}" for i, r in enumerate(self.reasons, 1))
        return f"quality gate FAILED: {len(self.reasons)} of {n} criteria failed: {listed}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-serialisable)."""
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "checks": [asdict(c) for c in self.checks],
            "policy": {"version": self.policy_version, "digest": self.policy_digest, "name": self.policy_name},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateDecision:
        """Inverse of :meth:`to_dict`."""
        policy = data.get("policy", {}) or {}
        return cls(
            passed=bool(data["passed"]),
            reasons=list(data.get("reasons", [])),
            checks=[Check(**c) for c in data.get("checks", [])],
            notes=list(data.get("notes", [])),
            policy_version=int(policy.get("version", POLICY_VERSION)),
            policy_digest=str(policy.get("digest", "")),
            policy_name=str(policy.get("name", "")),
        )


def _value(metrics: Mapping[str, Any], name: str) -> tuple[float | None, str]:
    """The metric as a float, or None and why not."""
    if name not in metrics:
        return None, "missing"
    value = metrics[name]
    if isinstance(value, bool):
        return None, f"not a number ({value!r})"
    if not isinstance(value, (int, float)):
        try:
            value = float(value)  # e.g. "0.81" read back from a tag
        except (TypeError, ValueError):
            return None, f"not a number ({value!r})"
    value = float(value)
    if not math.isfinite(value):
        return None, f"not finite ({value})"
    return value, ""


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def decide(
    candidate_metrics: Mapping[str, Any],
    champion_metrics: Mapping[str, Any] | None,
    policy: GatePolicy,
) -> GateDecision:
    """Apply ``policy`` to a candidate (and the current champion, if any). Pure: no I/O.

    Args:
        candidate_metrics: ``{metric: value}`` of the candidate.
        champion_metrics: the champion's metrics, or None when there is no champion (only thresholds apply).
        policy: the gate policy.

    Returns:
        :class:`GateDecision`; ``reasons`` lists every failed criterion.
    """
    checks: list[Check] = []
    notes: list[str] = []
    available = ", ".join(sorted(candidate_metrics)) or "none"
    for t in policy.thresholds:
        parts = [f">= {_fmt(t.min)}"] if t.min is not None else []
        parts += [f"<= {_fmt(t.max)}"] if t.max is not None else []
        name = f"{t.metric} {' and '.join(parts)}"
        value, why = _value(candidate_metrics, t.metric)
        if value is None:
            checks.append(Check(name, t.metric, "threshold", "failed", reason=(
                f"{t.metric}: {why} in the candidate metrics (required by threshold {' and '.join(parts)}; "
                f"candidate has: {available})")))
            continue
        if t.min is not None and value < t.min:
            checks.append(Check(name, t.metric, "threshold", "failed", value, t.min,
                                reason=f"{t.metric} = {_fmt(value)} is below the minimum {_fmt(t.min)}"))
        elif t.max is not None and value > t.max:
            checks.append(Check(name, t.metric, "threshold", "failed", value, t.max,
                                reason=f"{t.metric} = {_fmt(value)} is above the maximum {_fmt(t.max)}"))
        else:
            checks.append(Check(name, t.metric, "threshold", "passed", value, t.min if t.min is not None else t.max))

    if champion_metrics is None:
        if policy.comparisons:
            notes.append(
                f"no champion: only the {len(policy.thresholds)} absolute threshold(s) were checked; "
                f"{len(policy.comparisons)} champion comparison(s) skipped"
            )
        for c in policy.comparisons:
            checks.append(Check(f"{c.metric} vs champion ({c.direction} is better)", c.metric, "comparison",
                                "skipped", reason="no champion"))
    else:
        for c in policy.comparisons:
            margin = f"{c.margin:g}{' (relative)' if c.relative else ''}"
            name = f"{c.metric} vs champion ({c.direction} is better, margin {margin})"
            value, why = _value(candidate_metrics, c.metric)
            champ, champ_why = _value(champion_metrics, c.metric)
            if value is None:
                checks.append(Check(name, c.metric, "comparison", "failed", champion=champ, reason=(
                    f"{c.metric}: {why} in the candidate metrics (needed for the champion comparison; candidate "
                    f"has: {available})")))
                continue
            if champ is None:
                text = (f"{c.metric}: {champ_why} in the champion's metrics, so non-inferiority cannot be shown; "
                        "re-evaluate the champion or set on_missing_champion_metric: skip")
                if policy.on_missing_champion_metric == "skip":
                    notes.append(text)
                    checks.append(Check(name, c.metric, "comparison", "skipped", value, reason=text))
                else:
                    checks.append(Check(name, c.metric, "comparison", "failed", value, reason=text))
                continue
            bound = c.bound(champ)
            ok = value >= bound if c.direction == "higher" else value <= bound
            if ok:
                checks.append(Check(name, c.metric, "comparison", "passed", value, bound, champ))
            else:
                word = "below" if c.direction == "higher" else "above"
                checks.append(Check(name, c.metric, "comparison", "failed", value, bound, champ, reason=(
                    f"{c.metric} = {_fmt(value)} is {word} the champion's {_fmt(champ)} by more than the "
                    f"non-inferiority margin {margin} (limit {_fmt(bound)}, {c.direction} is better)")))
    reasons = [c.reason for c in checks if c.status == "failed"]
    return GateDecision(
        passed=not reasons,
        reasons=reasons,
        checks=checks,
        notes=notes,
        policy_version=policy.version,
        policy_digest=policy.digest,
        policy_name=policy.name,
    )


# --------------------------------------------------------------------------------------------- metric names


def _mean(block: Any) -> float | None:
    if isinstance(block, Mapping):
        block = block.get("mean")
    return float(block) if _number(block) else None


def metrics_from_reports(
    in_domain: Mapping[str, Any] | None = None,
    zero_shot: Mapping[str, Any] | None = None,
    *,
    n_parameters: int | None = None,
    latency_ms: float | None = None,
    extra: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Flatten evaluation reports into the gate's metric names.

    Args:
        in_domain: the content of an :func:`lgmsnet.evaluation.evaluate` ``metrics.json`` (its ``metrics`` block
            ``{name: {mean, std}}``), or a flat ``{dice: 0.8, ...}`` dict such as the trainer's test metrics.
        zero_shot: the content of a :func:`lgmsnet.evaluation.zero_shot` ``summary.json``; targets marked
            ``zero_shot: false`` (same data as training) are left out.
        n_parameters: the model's parameter count → ``model.parameters``.
        latency_ms: measured latency → ``latency_ms``.
        extra: further metrics, copied as they are.

    Returns:
        ``{"in_domain.dice": ..., "in_domain.iou": ..., "zero_shot.<target>.dice": ..., "model.parameters": ...,
        "latency_ms": ...}`` (only what was given).
    """
    out: dict[str, float] = {}
    if in_domain is not None:
        block = in_domain.get("metrics", in_domain)
        for key in ("dice", "iou", "sensitivity", "precision", "hd95"):
            value = _mean(block.get(key)) if isinstance(block, Mapping) else None
            if value is not None:
                out[f"in_domain.{key}"] = value
    if zero_shot is not None:
        for target in zero_shot.get("targets", []):
            if not target.get("zero_shot", True):
                continue
            for key in ("dice", "iou"):
                value = _mean((target.get("metrics") or {}).get(key))
                if value is not None:
                    out[f"zero_shot.{target['name']}.{key}"] = value
    if n_parameters is not None:
        out["model.parameters"] = float(n_parameters)
    if latency_ms is not None:
        out["latency_ms"] = float(latency_ms)
    out.update({k: float(v) for k, v in (extra or {}).items()})
    return out


def format_checks(checks: Sequence[Check]) -> str:
    """A plain-text table of checks (for the CLI and the model card)."""
    lines = []
    for c in checks:
        value = "n/a" if c.candidate is None else _fmt(c.candidate)
        champ = "" if c.champion is None else f" champion {_fmt(c.champion)}"
        bound = "" if c.bound is None else f" limit {_fmt(c.bound)}"
        lines.append(f"[{c.status.upper():7}] {c.name}: candidate {value}{champ}{bound}"
                     + (f" — {c.reason}" if c.reason and c.status != "passed" else ""))
    return "\n".join(lines)
