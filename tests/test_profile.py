"""Dataset profiles and drift (components.profile + ``lgmsnet data profile | drift``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from components.profile import (
    DriftThresholds,
    Profile,
    compare_profiles,
    load_profile,
    profile_dataset,
    write_drift_report,
    write_profile,
)
from components.validate_cli import register
from components.validation import build_metadata_table, validate_dataset
from lgmsnet.data import synthesize

N = 24


def _run(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="lgmsnet")
    d = p.add_subparsers().add_parser("data")
    register(d.add_subparsers(dest="data_command"))
    args = p.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def domains(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("domains")
    return {d: synthesize(root / d, N, d, seed=0, size=64) for d in ("source", "target")}


@pytest.fixture(scope="module")
def profiles(domains: dict[str, Path]) -> dict[str, Profile]:
    return {d: profile_dataset(path, workers=1) for d, path in domains.items()}


def test_profile_contents_and_round_trip(profiles, domains, tmp_path) -> None:
    p = profiles["source"]
    assert p.n == p.n_profiled == N and p.source == str(domains["source"])
    for name in ("pixel_intensity.r", "image_mean.g", "image_std.b", "width", "height", "aspect_ratio",
                 "foreground_fraction"):  # fmt: skip
        dist = p.distributions[name]
        assert dist.n == N and sum(dist.fractions) == pytest.approx(1.0)
        assert len(dist.edges) == len(dist.fractions) + 1
    assert p.distributions["width"].quantiles["p50"] == 64
    assert p.distributions["foreground_fraction"].quantiles["p0"] == 0.0  # synthetic data has empty masks
    path = write_profile(p, tmp_path / "p.json")
    assert load_profile(path).to_dict() == json.loads(json.dumps(p.to_dict()))
    # a profile from an existing metadata table equals the one from the folder
    table = build_metadata_table(domains["source"], workers=1)
    assert profile_dataset(table).distributions["image_mean.r"] == p.distributions["image_mean.r"]


def test_dataset_against_itself_shows_no_drift(profiles) -> None:
    report = compare_profiles(profiles["source"], profiles["source"])
    assert not report.has_drift and report.statistics
    for stat in report.statistics:
        assert stat.status == "ok" and stat.psi == pytest.approx(0.0, abs=1e-12) and stat.ks == 0.0
        assert stat.wasserstein == 0.0


def test_source_to_target_intensity_drift_is_detected(profiles, tmp_path) -> None:
    report = compare_profiles(profiles["source"], profiles["target"])
    drifted = {s.name for s in report.drifted}
    assert {"pixel_intensity.r", "pixel_intensity.g", "image_mean.r", "image_mean.b"} <= drifted
    assert "width" not in drifted and "height" not in drifted  # same image size in both domains
    mean_r = next(s for s in report.statistics if s.name == "image_mean.r")
    assert mean_r.relative_change is not None and mean_r.relative_change < -0.1  # the target domain is darker
    assert mean_r.psi is not None and mean_r.psi > 1.0
    json_path, md_path = write_drift_report(report, tmp_path / "drift.json")
    assert json.loads(json_path.read_text())["has_drift"] is True
    assert "| image_mean.r |" in md_path.read_text() and "**drift**" in md_path.read_text()
    # thresholds are configurable
    lenient = compare_profiles(profiles["source"], profiles["target"], DriftThresholds(psi=1e6, ks=2.0,
                                                                                        relative_change=1e6))
    assert not lenient.has_drift
    with pytest.raises(ValueError, match="positive"):
        DriftThresholds(psi=0)


def test_edges_mismatch_and_bad_files(profiles, tmp_path) -> None:
    data = profiles["source"].to_dict()
    data["distributions"]["width"]["edges"] = [e + 1 for e in data["distributions"]["width"]["edges"]]
    with pytest.raises(ValueError, match="different bin edges"):
        compare_profiles(profiles["source"], Profile.from_dict(data))
    bad = tmp_path / "bad.json"
    bad.write_text('{"format_version": 99}')
    with pytest.raises(ValueError, match="format_version"):
        load_profile(bad)
    with pytest.raises(FileNotFoundError, match="lgmsnet data profile"):
        load_profile(tmp_path / "missing.json")


def test_validate_with_reference_profile_reports_drift_as_warning(profiles, domains, tmp_path) -> None:
    reference = write_profile(profiles["source"], tmp_path / "ref.json")
    res = validate_dataset(domains["target"], reference_profile=reference, report_dir=tmp_path / "r")
    drift = [f for f in res.warnings if f.rule == "drift"]
    assert res.passed and drift and any("image_mean.r" in f.message for f in drift)
    assert res.drift_paths is not None and all(p.is_file() for p in res.drift_paths)
    summary = json.loads(res.summary_path.read_text())
    assert summary["drift"]["has_drift"] is True and (tmp_path / "r" / "profile.json").is_file()
    strict = validate_dataset(domains["target"], reference_profile=profiles["source"], report_dir=tmp_path / "s",
                              severity_overrides={"drift": "error"})  # fmt: skip
    assert not strict.passed and {f.rule for f in strict.errors} == {"drift"}
    same = validate_dataset(domains["source"], reference_profile=reference, report_dir=tmp_path / "t")
    assert same.drift is not None and not same.drift.has_drift


def test_profile_and_drift_commands(domains, tmp_path, capsys) -> None:
    ref = tmp_path / "ref.json"
    assert _run(["data", "profile", str(domains["source"]), "--out", str(ref)]) == 0
    assert ref.is_file() and "wrote" in capsys.readouterr().out
    out = tmp_path / "drift"
    assert _run(["data", "drift", "--reference", str(ref), str(domains["target"]), "--out", str(out)]) == 0
    assert (out / "drift.json").is_file() and (out / "drift.md").is_file()
    assert "# Drift report" in capsys.readouterr().out
    rc = _run(["data", "drift", "--reference", str(ref), str(domains["target"]), "--out", str(out), "--fail-on-drift"])
    assert rc == 1 and "drifted from" in capsys.readouterr().err
    rc = _run(["data", "drift", "--reference", str(ref), str(domains["source"]), "--out", str(out), "--fail-on-drift"])
    assert rc == 0
