"""The governed registry workflow.

* ``integration``: a real ``mlflow server`` (PostgreSQL backend, S3 artifacts on SeaweedFS) — registration,
  promotion, rollback, concurrent promotions, ``models:/NAME@champion`` serving, an unreachable server.
* fast tier: the ``lgmsnet registry`` command line on an embedded SQLite store.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.entities.model_registry import ModelVersion

import lgmsnet
from components.gate import decide, policy_from_dict
from components.mlflow_model import log_model
from components.registry import (
    ALIAS_CHALLENGER,
    ALIAS_CHAMPION,
    ConcurrentPromotionError,
    PromotionRefused,
    RegistryError,
    promote,
    register_candidate,
    rollback,
    status,
)
from components.registry_cli import register_commands
from components.tracking import DatasetVersion, MLflowWriter, TrackingError, TrackingSettings, client
from lgmsnet.checkpoint import save_checkpoint
from tests.mlflowserver import MLflowServer, free_port, mlflow_server  # noqa: F401 - session fixture

POLICY = policy_from_dict({
    "version": 1,
    "name": "test-policy",
    "thresholds": [{"metric": "in_domain.dice", "min": 0.5}, {"metric": "model.parameters", "max": 100_000}],
    "comparisons": [{"metric": "in_domain.dice", "direction": "higher", "margin": 0.02}],
})
DATA = DatasetVersion(name="synth-source", source="s3://data/dvcstore", md5="0123456789abcdef0123456789abcdef",
                      synthetic=True, licence="synthetic")
FAST = TrackingSettings(max_retries=1, backoff_factor=0, timeout_s=5, health_timeout_s=0.5)


def _checkpoint(folder: Path) -> Path:
    torch.manual_seed(0)
    model = lgmsnet.create_model("lgmsnet_tiny")
    return save_checkpoint(folder / "best.pt", model, config={"data": {"image_size": 64}},
                           data={"fingerprint": "f" * 64, "path": "/data/synth", "synthetic": True})


def _metrics(dice: float) -> dict[str, float]:
    return {"in_domain.dice": dice, "model.parameters": 59_493.0, "zero_shot.target.dice": dice - 0.1}


def _run(uri: str, ckpt: Path, dice: float) -> str:
    with MLflowWriter(uri, "registry-test", run_name=f"dice-{dice}") as writer:
        writer.log_metrics({"val_dice": dice}, 1)
    log_model(writer.run_id, ckpt, tracking_uri=uri)
    return writer.run_id


def _register(
    uri: str, run_id: str, name: str, dice: float, champion: dict[str, float] | None = None
) -> ModelVersion | None:
    decision = decide(_metrics(dice), champion, POLICY)
    return register_candidate(uri, run_id, name, decision, _metrics(dice), DATA)


# ================================================================================== integration (real server)


@pytest.fixture(scope="module")
def server(mlflow_server: MLflowServer) -> str:  # noqa: F811 - the imported fixture
    return mlflow_server.url


@pytest.fixture(scope="module")
def runs(server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    ckpt = _checkpoint(tmp_path_factory.mktemp("ckpt"))
    return {"good": _run(server, ckpt, 0.80), "bad": _run(server, ckpt, 0.30), "better": _run(server, ckpt, 0.85)}


def _versions_of(uri: str, name: str, run_id: str) -> list:
    return client(uri).search_model_versions(f"name='{name}' and run_id='{run_id}'")


@pytest.mark.integration
def test_passing_run_registers_exactly_one_version_with_challenger(server: str, runs: dict[str, str]) -> None:
    mv = _register(server, runs["good"], "seg-register", 0.80)
    assert mv is not None and str(mv.version) == "1"
    again = _register(server, runs["good"], "seg-register", 0.80)
    assert str(again.version) == "1"
    assert len(_versions_of(server, "seg-register", runs["good"])) == 1
    c = client(server)
    assert c.get_registered_model("seg-register").aliases == {ALIAS_CHALLENGER: "1"}
    tags = c.get_model_version("seg-register", "1").tags
    assert tags["gate.passed"] == "true" and json.loads(tags["gate.reasons"]) == []
    assert tags["run_id"] == runs["good"] and tags["registry.complete"] == "true"
    assert tags["dataset.md5"] == DATA.md5 and tags["dataset.synthetic"] == "true"
    assert json.loads(tags["metrics"])["in_domain.dice"] == 0.80 and tags["metric.in_domain.dice"] == "0.8"
    assert tags["gate.policy_digest"] == POLICY.digest
    card = tags["model_card"]
    assert card == f"runs:/{runs['good']}/model_card/v1"
    files = {f.path for f in c.list_artifacts(runs["good"], "model_card/v1")}
    assert files == {"model_card/v1/model_card.md", "model_card/v1/model_card.html"}
    text = Path(c.download_artifacts(runs["good"], "model_card/v1/model_card.md")).read_text()
    assert "TRAINED ON SYNTHETIC DATA" in text and "Licence notes" in text and "in_domain" not in text.split("##")[0]


@pytest.mark.integration
def test_failing_run_registers_nothing_and_the_run_says_why(server: str, runs: dict[str, str]) -> None:
    assert _register(server, runs["bad"], "seg-register", 0.30) is None
    assert _versions_of(server, "seg-register", runs["bad"]) == []
    tags = client(server).get_run(runs["bad"]).data.tags
    assert tags["gate.passed"] == "false" and tags["registry.status"] == "rejected"
    assert "in_domain.dice = 0.3 is below the minimum 0.5" in tags["registry.rejection"]
    assert "model_card/candidate" in tags["model_card"]


@pytest.mark.integration
def test_promote_requires_a_gated_version_and_records_the_approval(server: str, runs: dict[str, str]) -> None:
    name = "seg-promote"
    v1 = _register(server, runs["good"], name, 0.80)
    c = client(server)
    # a version registered around the gate (e.g. from the UI) has no gate tags: refused
    model_id = c.get_run(runs["bad"]).data.tags["lgmsnet.model_id"]
    source = c.get_logged_model(model_id).artifact_location
    rogue = c.create_model_version(name, source=source, run_id=runs["bad"], model_id=model_id)
    with pytest.raises(PromotionRefused, match=f"version {rogue.version} of '{name}' did not pass the quality gate"):
        promote(name, rogue.version, "alice", "looks fine", tracking_uri=server)
    with pytest.raises(PromotionRefused, match="has no version '99'"):
        promote(name, 99, "alice", "typo", tracking_uri=server)
    with pytest.raises(ValueError, match="approver and reason must be given"):
        promote(name, v1.version, "", "  ", tracking_uri=server)

    record = promote(name, v1.version, "alice", "first release", tracking_uri=server)
    assert record.changed and record.previous is None and record.seq == 1
    model = c.get_registered_model(name)
    assert model.aliases[ALIAS_CHAMPION] == str(v1.version)
    assert ALIAS_CHALLENGER not in model.aliases  # the challenger became champion
    tags = c.get_model_version(name, str(v1.version)).tags
    assert tags["promotion.approved_by"] == "alice" and tags["promotion.reason"] == "first release"
    assert tags["promotion.approved_at"] and tags["promotion.previous_champion"] == ""
    st = status(name, tracking_uri=server)
    assert st.champion.version == str(v1.version) and st.champion.approved_by == "alice"
    assert [(h.event, h.version, h.approver) for h in st.history] == [("promote", str(v1.version), "alice")]
    assert promote(name, v1.version, "alice", "again", tracking_uri=server).changed is False


@pytest.mark.integration
def test_rollback_restores_the_previous_champion(server: str, runs: dict[str, str]) -> None:
    name = "seg-rollback"
    v1 = _register(server, runs["good"], name, 0.80)
    promote(name, v1.version, "alice", "first", tracking_uri=server)
    v2 = _register(server, runs["better"], name, 0.85, champion=_metrics(0.80))
    assert client(server).get_registered_model(name).aliases == {ALIAS_CHAMPION: "1", ALIAS_CHALLENGER: "2"}
    promote(name, v2.version, "bob", "better Dice", tracking_uri=server)

    record = rollback(name, approver="carol", reason="regression on site B", tracking_uri=server)
    assert (record.event, record.previous, record.version) == ("rollback", "2", "1")
    st = status(name, tracking_uri=server)
    assert st.champion.version == "1"
    assert [(h.event, h.previous, h.version) for h in st.history] == [
        ("promote", None, "1"), ("promote", "1", "2"), ("rollback", "2", "1")]
    tags = client(server).get_model_version(name, "1").tags
    assert tags["promotion.event"] == "rollback" and tags["promotion.approved_by"] == "carol"
    assert tags["promotion.previous_champion"] == "2"
    with pytest.raises(RegistryError, match="has no earlier champion recorded"):
        rollback(name, approver="carol", reason="again", tracking_uri=server)


@pytest.mark.integration
def test_champion_alias_loads_and_segments_images_of_two_sizes(
    server: str, runs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    name = "seg-serve"
    v1 = _register(server, runs["good"], name, 0.80)
    promote(name, v1.version, "alice", "serve it", tracking_uri=server)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    model = mlflow.pyfunc.load_model(f"models:/{name}@{ALIAS_CHAMPION}")
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8), rng.integers(0, 256, (96, 64, 3), dtype=np.uint8)]
    masks = model.predict(images)
    assert [m.shape for m in masks] == [(64, 96), (96, 64)]
    assert all(set(np.unique(m)) <= {0, 1} for m in masks)


@pytest.mark.integration
def test_unreachable_server_retries_then_fails_clearly_and_registers_nothing(
    server: str, runs: dict[str, str]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    decision = decide(_metrics(0.85), None, POLICY)
    started = time.monotonic()
    with pytest.raises(TrackingError) as info:
        register_candidate(dead, runs["better"], "seg-unreachable", decision, _metrics(0.85), DATA, settings=FAST)
    assert time.monotonic() - started < 15
    assert dead in str(info.value) and "attempt(s)" in str(info.value)
    assert _versions_of(server, "seg-unreachable", runs["better"]) == []


@pytest.mark.integration
def test_a_failure_after_the_version_was_created_leaves_no_half_registered_version(
    server: str, runs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import requests

    def broken(*args: object, **kwargs: object) -> None:
        raise requests.ConnectionError("connection reset by peer")

    monkeypatch.setattr(mlflow.MlflowClient, "set_registered_model_alias", broken)
    with pytest.raises(TrackingError, match="stopped answering"):
        _register(server, runs["better"], "seg-half", 0.85)
    assert _versions_of(server, "seg-half", runs["better"]) == []
    monkeypatch.undo()
    mv = _register(server, runs["better"], "seg-half", 0.85)  # a retry registers it cleanly
    assert mv.tags["registry.complete"] == "true"


def _race(fns: list) -> list:
    barrier = threading.Barrier(len(fns))
    results: list = [None] * len(fns)

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fns[i]()
        except Exception as exc:  # noqa: BLE001 - collected for the assertions
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


@pytest.mark.integration
def test_concurrent_promotions_leave_a_consistent_state(server: str, runs: dict[str, str]) -> None:
    name = "seg-race"
    v1 = _register(server, runs["good"], name, 0.80)
    v2 = _register(server, runs["better"], name, 0.85)
    v3 = _register(server, runs["bad"], name, 0.90)  # the gate input decides; here it passes
    promote(name, v1.version, "alice", "base", tracking_uri=server)

    # compare-and-set: two reviewers both saw champion v1 and promote different versions; exactly one wins
    results = _race([
        lambda: promote(name, v2.version, "bob", "race A", tracking_uri=server, expected_champion=v1.version),
        lambda: promote(name, v3.version, "carol", "race B", tracking_uri=server, expected_champion=v1.version),
    ])
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], ConcurrentPromotionError), results
    assert "another promotion or rollback happened first" in str(errors[0])
    winner = next(r for r in results if not isinstance(r, Exception))
    assert winner.previous == str(v1.version)
    assert client(server).get_registered_model(name).aliases[ALIAS_CHAMPION] == winner.version

    # without expectations both go through one after the other; the history stays a chain
    results = _race([
        lambda: promote(name, v1.version, "dave", "race C", tracking_uri=server),
        lambda: promote(name, v2.version if winner.version != str(v2.version) else v3.version, "erin", "race D",
                        tracking_uri=server),
    ])
    assert not [r for r in results if isinstance(r, Exception)], results
    st = status(name, tracking_uri=server)
    chain = [h for h in st.history if h.changed]
    for earlier, later in itertools.pairwise(chain):
        assert later.previous == earlier.version, [h.to_dict() for h in st.history]
    assert st.champion.version == (chain[-1].version)
    assert [h.seq for h in st.history] == list(range(1, len(st.history) + 1))
    lock = client(server).search_registered_models(f"name='{name}.lock'")
    assert lock == []


# ================================================================================== CLI on embedded SQLite


@pytest.fixture(scope="module")
def sqlite_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    from components.tracking import default_tracking_uri

    folder = tmp_path_factory.mktemp("registry-cli")
    uri = default_tracking_uri(folder)
    ckpt = _checkpoint(folder)
    yield uri, _run(uri, ckpt, 0.8), folder


def _cli(argv: list[str]) -> int:
    from lgmsnet.cli import main

    return main(argv, extensions=[register_commands])


def test_cli_gate_register_promote_status_rollback(sqlite_run: tuple[str, str, Path], capsys: pytest.CaptureFixture,
                                                   tmp_path: Path) -> None:
    uri, run_id, _ = sqlite_run
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_metrics(0.8)))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"in_domain.dice": 0.2}))
    policy = tmp_path / "policy.yaml"
    policy.write_text(json.dumps(POLICY.to_dict()))  # JSON is YAML
    common = ["--tracking-uri", uri]

    assert _cli(["registry", "gate", "--policy", str(policy), "--metrics", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "quality gate FAILED: 2 of 3 criteria failed" in out and "model.parameters: missing" in out
    assert _cli(["registry", "gate", "--policy", str(policy), "--metrics", str(good), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True

    assert _cli(["registry", "register", "--run-id", run_id, "--name", "cli-seg", "--policy", str(policy),
                 "--metrics", str(bad), *common]) == 1
    assert "NOT registered" in capsys.readouterr().err
    assert _cli(["registry", "register", "--run-id", run_id, "--name", "cli-seg", "--policy", str(policy),
                 "--metrics", str(good), *common]) == 0
    assert "as cli-seg version 1 (alias challenger)" in capsys.readouterr().out

    assert _cli(["registry", "promote", "cli-seg", "1", "--approver", "alice", "--reason", "ok", *common]) == 0
    assert "champion none -> 1 (approved by alice" in capsys.readouterr().out
    assert _cli(["registry", "promote", "cli-seg", "7", "--approver", "alice", "--reason", "x", *common]) == 1
    assert "has no version '7'" in capsys.readouterr().err
    assert _cli(["registry", "promote", "cli-seg", "1", "--approver", "bob", "--reason", "x",
                 "--expect-champion", "none", *common]) == 1
    assert "another promotion or rollback happened first" in capsys.readouterr().err

    assert _cli(["registry", "status", "cli-seg", "--json", *common]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["champion"]["version"] == "1" and st["history"][0]["approver"] == "alice"
    assert _cli(["registry", "status", "cli-seg", *common]) == 0
    assert "champion: version 1" in capsys.readouterr().out

    assert _cli(["registry", "rollback", "cli-seg", "--approver", "carol", "--reason", "x", *common]) == 1
    assert "no earlier champion" in capsys.readouterr().err
    assert _cli(["registry", "status", "no-such-model", *common]) == 1
    assert "registered model 'no-such-model' does not exist" in capsys.readouterr().err


def test_cli_status_of_an_unreachable_server_exits_1_with_the_uri(capsys: pytest.CaptureFixture) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    assert _cli(["registry", "status", "x", "--tracking-uri", dead, "--max-retries", "0"]) == 1
    err = capsys.readouterr().err
    assert f"MLflow tracking server {dead} is unreachable" in err


def test_registry_lock_names_are_refused_as_model_names(sqlite_run: tuple[str, str, Path]) -> None:
    uri, run_id, _ = sqlite_run
    with pytest.raises(ValueError, match="reserved for registry locks"):
        _register(uri, run_id, "x.lock", 0.8)
