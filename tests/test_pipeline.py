"""The retraining pipeline: compiled YAML contents, staleness, submit/schedule up to the KFP client, local runs."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from pipelines.cli import register_commands
from pipelines.retraining import ClusterOptions, compile_pipeline

from .conftest import REPO

COMMITTED = REPO / "pipelines" / "retraining.yaml"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, Any]:
    path = compile_pipeline(tmp_path_factory.mktemp("kfp") / "p.yaml")
    return next(yaml.safe_load_all(path.read_text()))


def _executor(spec: dict[str, Any], task_prefix: str) -> dict[str, Any]:
    execs = spec["deploymentSpec"]["executors"]
    (key,) = [k for k in execs if k.startswith(f"exec-{task_prefix}")]
    return execs[key]["container"]


def _platform(spec: dict[str, Any], path: Path) -> dict[str, Any]:
    docs = list(yaml.safe_load_all(path.read_text()))
    return docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"] if len(docs) > 1 else {}


def test_committed_pipeline_yaml_is_not_stale(tmp_path) -> None:
    fresh = compile_pipeline(tmp_path / "fresh.yaml")
    assert COMMITTED.read_text() == fresh.read_text(), (
        "pipelines/retraining.yaml is stale: run `lgmsnet pipeline compile` and commit the result"
    )


def test_train_task_requests_a_gpu_cpu_and_memory(compiled) -> None:
    train = _executor(compiled, "train-op")
    res = train["resources"]
    assert res["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert res["accelerator"]["resourceCount"] == "1"
    assert res["resourceCpuRequest"] == "8" and res["resourceMemoryLimit"] == "32G"
    assert train["image"] == "ghcr.io/lgmsnet/lgmsnet:0.1.0"
    # no runtime pip installs: the image holds the project
    assert "pip install" not in " ".join(train.get("command", []))


def test_node_selector_toleration_and_secrets_are_compiled(tmp_path) -> None:
    path = compile_pipeline(tmp_path / "p.yaml", ClusterOptions(image="registry.local/lgmsnet:1", gpus=2))
    k8s = _platform({}, path)
    train = k8s["exec-train-op"]
    assert train["nodeSelector"]["labels"] == {"lgmsnet.io/node-pool": "gpu"}
    assert train["tolerations"][0]["key"] == "nvidia.com/gpu" and train["tolerations"][0]["effect"] == "NoSchedule"
    secrets = {s["secretName"] for s in train["secretAsEnv"]}
    assert secrets == {"lgmsnet-s3", "lgmsnet-mlflow"}
    envs = {m["envVar"] for s in train["secretAsEnv"] for m in s["keyToEnv"]}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_PASSWORD"} <= envs
    spec = next(yaml.safe_load_all(path.read_text()))
    assert _executor(spec, "train-op")["resources"]["accelerator"]["resourceCount"] == "2"
    assert _executor(spec, "gate-op")["image"] == "registry.local/lgmsnet:1"


def test_gate_condition_fan_out_and_exit_handler(compiled) -> None:
    root = compiled["root"]["dag"]["tasks"]
    assert root["outcome-op"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    inner = compiled["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    # validation gates training
    assert "validate-data-op" in inner["train-op"]["dependentTasks"]
    # one evaluation task per zero-shot target: a ParallelFor over the targets parameter
    loops = [t for t in inner.values() if "parameterIterator" in t]
    assert len(loops) == 1
    assert loops[0]["parameterIterator"]["items"]["inputParameter"].endswith("zero_shot_targets")
    loop_dag = compiled["components"][loops[0]["componentRef"]["name"]]["dag"]["tasks"]
    assert list(loop_dag) == ["evaluate-op"]
    # the gate waits for every evaluation, registration only runs when it passed
    gate_deps = inner["gate-op"]["dependentTasks"]
    assert any(d.startswith("for-loop") for d in gate_deps)
    cond = [t for t in inner.values() if "triggerPolicy" in t and "condition" in t["triggerPolicy"]]
    assert len(cond) == 1 and "gate-op-Output" in cond[0]["triggerPolicy"]["condition"]
    cond_dag = compiled["components"][cond[0]["componentRef"]["name"]]["dag"]["tasks"]
    assert list(cond_dag) == ["register-op"]


def test_pytorchjob_variant_launches_the_job_from_a_pvc_pod(tmp_path) -> None:
    args = _parse(["pipeline", "compile", "--out", str(tmp_path / "pj.yaml"), "--pytorchjob-nodes", "2",
                   "--nproc-per-node", "4", "--gpus", "4"])
    assert args.func(args) == 0
    docs = list(yaml.safe_load_all((tmp_path / "pj.yaml").read_text()))
    execs = docs[0]["deploymentSpec"]["executors"]
    assert "exec-train-pytorchjob-op" in execs and "exec-train-op" not in execs
    assert "accelerator" not in execs["exec-train-pytorchjob-op"]["container"].get("resources", {})
    k8s = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train-pytorchjob-op"]
    assert k8s["pvcMount"][0]["mountPath"] == "/workspace"
    task = docs[0]["components"]["comp-exit-handler-1"]["dag"]["tasks"]["train-pytorchjob-op"]
    params = task["inputs"]["parameters"]
    assert params["nodes"]["runtimeValue"]["constant"] == 2 and params["nproc_per_node"]["runtimeValue"]["constant"] == 4
    assert params["job_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"  # one job per pipeline run


def test_no_secrets_in_compiled_pipeline() -> None:
    text = COMMITTED.read_text()
    assert not re.search(r"(?i)(aws_secret_access_key|password|token)\s*[:=]\s*['\"]?[A-Za-z0-9/+]{8,}", text)
    assert "AKIA" not in text


class _FakeKFPClient:
    """Records what would be sent to a KFP API server (none runs here)."""

    calls: list[tuple[str, dict[str, Any]]] = []

    def __init__(self, host: str) -> None:
        self.host = host

    def create_run_from_pipeline_package(self, package: str, **kw: Any) -> Any:
        _FakeKFPClient.calls.append(("run", {"package": package, **kw}))
        return argparse.Namespace(run_id="run-123")

    def create_experiment(self, name: str, namespace: str | None = None) -> Any:
        _FakeKFPClient.calls.append(("experiment", {"name": name}))
        return argparse.Namespace(experiment_id="exp-1")

    def create_recurring_run(self, **kw: Any) -> Any:
        _FakeKFPClient.calls.append(("recurring", kw))
        return argparse.Namespace(recurring_run_id="rr-9")


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    register_commands(p.add_subparsers(dest="command"))
    return p.parse_args(argv)


def test_submit_and_schedule_up_to_the_client(tmp_path) -> None:
    from pipelines.cli import schedule, submit

    _FakeKFPClient.calls = []
    args = _parse(["pipeline", "submit", "--host", "http://kfp.example", "--package", str(COMMITTED),
                   "--param", "data_repo=https://git.example/data.git", "--param", 'train_overrides={"train.epochs": 3}'])
    assert submit(args, client_factory=_FakeKFPClient) == "run-123"
    kind, call = _FakeKFPClient.calls[-1]
    assert kind == "run" and call["package"] == str(COMMITTED)
    assert call["arguments"] == {"data_repo": "https://git.example/data.git", "train_overrides": {"train.epochs": 3}}

    args = _parse(["pipeline", "schedule", "--host", "http://kfp.example", "--cron", "0 0 3 * * 1",
                   "--param", "data_repo=repo"])
    assert schedule(args, client_factory=_FakeKFPClient) == "rr-9"
    kind, call = _FakeKFPClient.calls[-1]
    assert kind == "recurring"
    assert call["cron_expression"] == "0 0 3 * * 1" and call["no_catchup"] is True and call["max_concurrency"] == 1
    compiled = next(yaml.safe_load_all(Path(call["pipeline_package_path"]).read_text()))
    assert compiled["pipelineInfo"]["name"] == "lgmsnet-retraining"


def test_bad_params_are_named() -> None:
    from pipelines.cli import submit

    args = _parse(["pipeline", "submit", "--host", "http://kfp.example", "--package", str(COMMITTED),
                   "--params", "{not json"])
    with pytest.raises(ValueError, match="--params must be a JSON object"):
        submit(args, client_factory=_FakeKFPClient)


# ------------------------------------------------------------------------------------------- local (kfp.local)


def _small_real_like_dataset(root: Path, n: int, size: int, bad_size: int | None = None) -> Path:
    from lgmsnet.data import synthesize

    synthesize(root, n, "source", seed=3, size=size)
    if bad_size:  # an image below the validation minimum size: the importer copies it, validation must refuse it
        stem = sorted(p.stem for p in (root / "images").iterdir())[0]
        Image.new("RGB", (bad_size, bad_size), (120, 40, 40)).save(root / "images" / f"{stem}.png")
        Image.new("L", (bad_size, bad_size), 0).save(root / "masks" / f"{stem}.png")
    return root


@pytest.mark.integration
def test_failing_validation_stops_the_local_run_before_training(tmp_path) -> None:
    from pipelines.local import run_local

    data = _small_real_like_dataset(tmp_path / "bad", 12, 64, bad_size=32)
    target = _small_real_like_dataset(tmp_path / "tgt", 6, 64)
    res = run_local(tmp_path / "ws", data=str(data), targets={"tgt": str(target)}, epochs=1, image_size=64,
                    train_overrides={"model.name": "lgmsnet_tiny", "train.batch_size": 4},
                    gate_policy=str(REPO / "policies" / "gate-demo.yaml"))
    assert res.outcome["state"] == "FAILED"
    assert not list((tmp_path / "ws" / "kfp").rglob("best.pt")), "training ran although validation failed"
    assert isinstance(res.status, str) and "does not exist" in res.status  # nothing registered
    assert res.gate == {}


@pytest.mark.integration
def test_local_run_registers_a_challenger(tmp_path) -> None:
    from pipelines.local import run_local

    policy = tmp_path / "lenient.yaml"
    policy.write_text(yaml.safe_dump({
        "version": 1, "name": "test-lenient",
        "thresholds": [{"metric": "in_domain.dice", "min": 0.0}, {"metric": "zero_shot.synthetic-target.dice", "min": 0.0}],
        "comparisons": [],
    }))
    res = run_local(tmp_path / "ws", epochs=1, image_size=64, gate_policy=str(policy),
                    train_overrides={"model.name": "lgmsnet_tiny", "train.batch_size": 8})
    assert res.outcome["state"] == "SUCCEEDED", res.outcome
    assert res.gate["passed"] == "true"
    assert res.status.challenger is not None and res.status.champion is None
    record = json.loads((tmp_path / "ws" / "outcome.json").read_text())
    assert record["state"] == "SUCCEEDED"
