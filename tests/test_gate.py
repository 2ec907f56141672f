"""Unit tests of the pure quality gate (components.gate): no MLflow, no I/O besides policy files."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.gate import (
    POLICY_VERSION,
    GateDecision,
    GatePolicy,
    PolicyError,
    decide,
    format_checks,
    load_policy,
    metrics_from_reports,
    policy_from_dict,
)

REPO = Path(__file__).resolve().parents[1]


def _policy(**over: object) -> GatePolicy:
    doc = {
        "version": 1,
        "name": "test",
        "thresholds": [
            {"metric": "in_domain.dice", "min": 0.75},
            {"metric": "zero_shot.cvc.dice", "min": 0.5},
            {"metric": "model.parameters", "max": 2_500_000},
            {"metric": "latency_ms", "max": 100},
        ],
        "comparisons": [
            {"metric": "in_domain.dice", "direction": "higher", "margin": 0.01},
            {"metric": "latency_ms", "direction": "lower", "margin": 0.25, "relative": True},
        ],
    }
    doc.update(over)
    return policy_from_dict(doc)


GOOD = {"in_domain.dice": 0.80, "zero_shot.cvc.dice": 0.60, "model.parameters": 2_321_393, "latency_ms": 40.0}


def test_repository_policy_file_is_valid() -> None:
    policy = load_policy(REPO / "policies" / "gate.yaml")
    assert policy.version == POLICY_VERSION
    assert {t.metric for t in policy.thresholds} >= {"in_domain.dice", "model.parameters", "latency_ms"}
    assert any(t.metric.startswith("zero_shot.") for t in policy.thresholds)
    assert all(c.direction in ("higher", "lower") for c in policy.comparisons)
    assert len(policy.digest) == 64


def test_all_thresholds_met_without_champion_passes_and_notes_it() -> None:
    d = decide(GOOD, None, _policy())
    assert d.passed and d.reasons == []
    assert [c.status for c in d.checks] == ["passed"] * 4 + ["skipped"] * 2
    assert any("no champion" in n for n in d.notes)
    assert "PASSED" in d.message and "no champion" in d.message


@pytest.mark.parametrize(
    ("metric", "value", "fragment"),
    [
        ("in_domain.dice", 0.70, "in_domain.dice = 0.7 is below the minimum 0.75"),
        ("zero_shot.cvc.dice", 0.10, "zero_shot.cvc.dice = 0.1 is below the minimum 0.5"),
        ("model.parameters", 3_000_000, "model.parameters = 3e+06 is above the maximum 2.5e+06"),
        ("latency_ms", 120.0, "latency_ms = 120 is above the maximum 100"),
    ],
)
def test_each_absolute_threshold_fails_with_a_named_reason(metric: str, value: float, fragment: str) -> None:
    d = decide({**GOOD, metric: value}, None, _policy())
    assert not d.passed
    assert d.reasons == [fragment]


def test_boundary_values_pass() -> None:
    d = decide({**GOOD, "in_domain.dice": 0.75, "latency_ms": 100}, None, _policy())
    assert d.passed


def test_every_failed_criterion_is_listed_in_one_message() -> None:
    bad = {"in_domain.dice": 0.5, "zero_shot.cvc.dice": 0.1, "model.parameters": 9e6, "latency_ms": 500}
    d = decide(bad, {"in_domain.dice": 0.9, "latency_ms": 10}, _policy())
    assert len(d.reasons) == 6
    assert d.message.startswith("quality gate FAILED: 6 of 6 criteria failed: (1) ")
    for reason in d.reasons:
        assert reason in d.message


def test_non_inferiority_within_margin_passes_beyond_fails() -> None:
    champion = {"in_domain.dice": 0.80, "latency_ms": 40.0}
    ok = decide({**GOOD, "in_domain.dice": 0.7905, "latency_ms": 49.0}, champion, _policy())
    assert ok.passed, ok.message
    worse = decide({**GOOD, "in_domain.dice": 0.785, "latency_ms": 51.0}, champion, _policy())
    assert not worse.passed
    assert any("below the champion's 0.8 by more than the non-inferiority margin 0.01" in r for r in worse.reasons)
    assert any("above the champion's 40" in r and "relative" in r for r in worse.reasons)
    comp = next(c for c in worse.checks if c.kind == "comparison" and c.metric == "in_domain.dice")
    assert comp.champion == 0.80 and math.isclose(comp.bound, 0.79) and comp.candidate == 0.785


def test_direction_matters() -> None:
    # a lower latency than the champion is fine; a higher Dice than the champion is fine
    d = decide({**GOOD, "in_domain.dice": 0.95, "latency_ms": 1.0}, {"in_domain.dice": 0.8, "latency_ms": 40.0},
               _policy())
    assert d.passed


def test_missing_candidate_metric_fails_with_a_named_reason() -> None:
    metrics = {k: v for k, v in GOOD.items() if k != "zero_shot.cvc.dice"}
    d = decide(metrics, None, _policy())
    assert not d.passed
    assert d.reasons == [
        "zero_shot.cvc.dice: missing in the candidate metrics (required by threshold >= 0.5; candidate has: "
        "in_domain.dice, latency_ms, model.parameters)"
    ]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "n/a", None, True])
def test_non_numeric_or_non_finite_metric_fails(value: object) -> None:
    d = decide({**GOOD, "in_domain.dice": value}, None, _policy())
    assert not d.passed
    assert d.reasons[0].startswith("in_domain.dice: not ")


def test_numeric_strings_from_tags_are_accepted() -> None:
    assert decide({k: str(v) for k, v in GOOD.items()}, None, _policy()).passed


def test_metric_missing_in_champion_fails_or_is_skipped_by_policy() -> None:
    champion = {"latency_ms": 40.0}  # an old champion never evaluated for Dice
    strict = decide(GOOD, champion, _policy())
    assert not strict.passed
    assert "missing in the champion's metrics" in strict.reasons[0]
    lenient = decide(GOOD, champion, _policy(on_missing_champion_metric="skip"))
    assert lenient.passed
    assert any("missing in the champion's metrics" in n for n in lenient.notes)


def test_decision_round_trips_through_dict_and_records_the_policy() -> None:
    policy = _policy()
    d = decide({**GOOD, "in_domain.dice": 0.1}, {"in_domain.dice": 0.8, "latency_ms": 40}, policy)
    back = GateDecision.from_dict(d.to_dict())
    assert back == d
    assert back.policy_digest == policy.digest and back.policy_name == "test"
    assert "[FAILED ]" in format_checks(d.checks)


# ------------------------------------------------------------------------------------------ policy validation


@pytest.mark.parametrize(
    ("doc", "fragments"),
    [
        ({"version": 1, "thresholds": [{"metric": "a", "min": 0}], "threshold": []},
         ["unknown key(s) ['threshold']", "allowed: ['version'"]),
        ({"version": 2, "thresholds": [{"metric": "a", "min": 0}]}, ["'version' must be 1", "got 2"]),
        ({"thresholds": [{"metric": "a", "min": 0}]}, ["'version' must be 1", "got None"]),
        ({"version": 1, "thresholds": [{"metric": "a"}]}, ["thresholds[0] (a): give 'min' and/or 'max'"]),
        ({"version": 1, "thresholds": [{"metric": "a", "min": 2, "max": 1}]}, ["thresholds[0] (a): min 2 > max 1"]),
        ({"version": 1, "thresholds": [{"metric": "a", "mni": 0.5}]}, ["thresholds[0]: unknown key(s) ['mni']"]),
        ({"version": 1, "thresholds": [{"metric": "a", "min": "high"}]}, ["thresholds[0].min (a) must be a finite"]),
        ({"version": 1, "comparisons": [{"metric": "d", "direction": "up"}]},
         ["comparisons[0].direction (d) must be one of ['higher', 'lower']; got 'up'"]),
        ({"version": 1, "comparisons": [{"metric": "d", "direction": "higher", "margin": -0.1}]},
         ["comparisons[0].margin (d) must be a number >= 0"]),
        ({"version": 1, "comparisons": [{"metric": "d", "direction": "higher"}, {"metric": "d", "direction": "lower"}]},
         ["comparisons[1]: metric 'd' is compared twice"]),
        ({"version": 1, "on_missing_champion_metric": "ignore", "thresholds": [{"metric": "a", "min": 0}]},
         ["'on_missing_champion_metric' must be one of ['fail', 'skip']"]),
        ({"version": 1}, ["has no 'thresholds' and no 'comparisons'"]),
        (["version", 1], ["must be a mapping"]),
    ],
)
def test_invalid_policy_is_a_named_error(doc: object, fragments: list[str]) -> None:
    with pytest.raises(PolicyError) as info:
        policy_from_dict(doc, source="p.yaml")
    for fragment in fragments:
        assert fragment in str(info.value)


def test_all_policy_problems_are_reported_at_once() -> None:
    doc = {"version": 3, "extra": 1, "thresholds": [{"metric": "a"}],
           "comparisons": [{"metric": "b", "direction": "x"}]}
    with pytest.raises(PolicyError) as info:
        policy_from_dict(doc)
    text = str(info.value)
    for fragment in ("['extra']", "'version' must be 1", "give 'min'", "direction (b)"):
        assert fragment in text


def test_policy_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [1\n")
    with pytest.raises(PolicyError, match=r"bad.yaml is not valid YAML"):
        load_policy(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump({"version": 1, "thresholds": [{"metric": "a", "min": 0, "typo": 1}]}))
    pattern = r"invalid gate policy .*wrong.yaml: thresholds\[0\]: unknown key\(s\) \['typo'\]"
    with pytest.raises(PolicyError, match=pattern):
        load_policy(wrong)


def test_policy_digest_changes_with_content() -> None:
    assert _policy().digest != _policy(thresholds=[{"metric": "in_domain.dice", "min": 0.8}]).digest
    assert _policy().digest == _policy().digest


# ------------------------------------------------------------------------------------------ metric names


def test_metrics_from_reports_flattens_evaluation_outputs() -> None:
    evaluate_report = {"metrics": {"dice": {"mean": 0.81, "std": 0.1}, "iou": {"mean": 0.7, "std": 0.1},
                                   "hd95": {"mean": None, "std": None}}}
    zero_shot_summary = {"targets": [
        {"name": "cvc", "zero_shot": True, "metrics": {"dice": {"mean": 0.6}, "iou": {"mean": 0.5}}},
        {"name": "train-copy", "zero_shot": False, "metrics": {"dice": {"mean": 0.99}}},
    ]}
    m = metrics_from_reports(evaluate_report, zero_shot_summary, n_parameters=1000, latency_ms=12.5,
                             extra={"custom": 1})
    assert m == {"in_domain.dice": 0.81, "in_domain.iou": 0.7, "zero_shot.cvc.dice": 0.6, "zero_shot.cvc.iou": 0.5,
                 "model.parameters": 1000.0, "latency_ms": 12.5, "custom": 1.0}
    assert metrics_from_reports({"dice": 0.5, "n_images": 3}) == {"in_domain.dice": 0.5}


def test_gate_module_is_pure() -> None:
    code = "import sys, components.gate; print(sorted(m for m in ('mlflow', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
