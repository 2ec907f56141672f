"""PyTorchJob manifests (checked against the kubeflow-training SDK model) and submission against a fake API."""

from __future__ import annotations

import copy
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.k8s import (
    CONTAINER_NAME,
    GPU_NODE_SELECTOR,
    GPU_TOLERATION,
    IMAGE_UID,
    LAUNCH_SCRIPT,
    JobError,
    JobFailedError,
    JobTimeoutError,
    ManifestError,
    dump_yaml,
    pytorchjob_manifest,
    submit_and_wait,
    validate_pytorchjob,
)

IMAGE = "registry.example.org/lgmsnet:0.1.0-cu128"
ARGS = ["--data", "/workspace/data/isic", "--out", "/workspace/runs/r1", "--epochs", "100"]


def _container(manifest: dict[str, Any], rtype: str = "Master") -> dict[str, Any]:
    return manifest["spec"]["pytorchReplicaSpecs"][rtype]["template"]["spec"]["containers"][0]


def _pod(manifest: dict[str, Any], rtype: str = "Master") -> dict[str, Any]:
    return manifest["spec"]["pytorchReplicaSpecs"][rtype]["template"]["spec"]


# --------------------------------------------------------------------------------------------- manifest


def test_single_node_defaults_validate_against_sdk() -> None:
    m = pytorchjob_manifest("lgmsnet-train", IMAGE, ARGS)
    assert m["apiVersion"] == "kubeflow.org/v1" and m["kind"] == "PyTorchJob"
    assert m["metadata"] == {"name": "lgmsnet-train", "namespace": "kubeflow",
                             "labels": {"app.kubernetes.io/name": "lgmsnet", "app.kubernetes.io/component": "train"}}
    specs = m["spec"]["pytorchReplicaSpecs"]
    assert list(specs) == ["Master"]  # one node: no Worker entry at all
    assert specs["Master"]["replicas"] == 1 and specs["Master"]["restartPolicy"] == "OnFailure"
    assert m["spec"]["nprocPerNode"] == "1"
    assert m["spec"]["runPolicy"] == {"cleanPodPolicy": "Running", "backoffLimit": 3}
    c = _container(m)
    assert c["name"] == CONTAINER_NAME == "pytorch"
    assert c["command"] == ["/bin/sh", "-c", LAUNCH_SCRIPT, "lgmsnet-train"]
    assert c["args"] == [*ARGS, "--device", "cuda"]
    assert c["resources"] == {"requests": {"cpu": "8", "memory": "32Gi"},
                              "limits": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}}
    assert c["ports"] == [{"name": "pytorchjob-port", "containerPort": 23456, "protocol": "TCP"}]
    assert c["env"] == [{"name": "LGMSNET_RUN_DIR", "value": "/workspace/runs/r1"}]  # for the resume check only
    pod = _pod(m)
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == IMAGE_UID
    assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]

    job = validate_pytorchjob(m)
    assert type(job).__name__ == "KubeflowOrgV1PyTorchJob"
    master = job.spec.pytorch_replica_specs["Master"]
    assert master.template.spec.containers[0].name == "pytorch"
    assert job.spec.nproc_per_node == "1" and job.spec.run_policy.clean_pod_policy == "Running"
    # the YAML written for kubectl round-trips to the same manifest
    assert yaml.safe_load(dump_yaml(m)) == m


def test_multi_node_multi_gpu_with_secrets_volume_and_scheduling() -> None:
    m = pytorchjob_manifest(
        "lgmsnet-ddp", IMAGE, ARGS, namespace="ml", nodes=3, nproc_per_node=4, gpus_per_node=4, cpu="32",
        memory="128Gi", node_selector=GPU_NODE_SELECTOR, tolerations=[GPU_TOLERATION],
        secret_env={"AWS_ACCESS_KEY_ID": ("lgmsnet-s3", "AWS_ACCESS_KEY_ID"),
                    "AWS_SECRET_ACCESS_KEY": ("lgmsnet-s3", "AWS_SECRET_ACCESS_KEY"),
                    "MLFLOW_TRACKING_PASSWORD": ("lgmsnet-mlflow", "MLFLOW_TRACKING_PASSWORD")},
        env={"MLFLOW_TRACKING_URI": "http://mlflow.mlflow.svc:5000"}, volume_claim="lgmsnet-work",
        service_account="lgmsnet-train", clean_pod_policy="All", backoff_limit=1, active_deadline_s=86400,
        ttl_after_finished_s=3600,
    )
    specs = m["spec"]["pytorchReplicaSpecs"]
    assert specs["Master"]["replicas"] == 1 and specs["Worker"]["replicas"] == 2
    assert m["spec"]["nprocPerNode"] == "4"
    assert m["spec"]["runPolicy"] == {"cleanPodPolicy": "All", "backoffLimit": 1, "activeDeadlineSeconds": 86400,
                                      "ttlSecondsAfterFinished": 3600}
    for rtype in ("Master", "Worker"):
        c, pod = _container(m, rtype), _pod(m, rtype)
        assert c["name"] == "pytorch" and c["resources"]["limits"]["nvidia.com/gpu"] == "4"
        env = {e["name"]: e for e in c["env"]}
        assert env["MLFLOW_TRACKING_URI"] == {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow.mlflow.svc:5000"}
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"] == {
            "secretKeyRef": {"name": "lgmsnet-s3", "key": "AWS_SECRET_ACCESS_KEY"}}
        assert all("value" not in e for n, e in env.items()
                   if n not in ("MLFLOW_TRACKING_URI", "LGMSNET_RUN_DIR"))  # Secrets by name only
        assert {"name": "workspace", "mountPath": "/workspace"} in c["volumeMounts"]
        assert {"name": "workspace", "persistentVolumeClaim": {"claimName": "lgmsnet-work"}} in pod["volumes"]
        assert pod["nodeSelector"] == {"lgmsnet.io/node-pool": "gpu"}
        assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert pod["serviceAccountName"] == "lgmsnet-train"
    job = validate_pytorchjob(m)
    assert job.spec.pytorch_replica_specs["Worker"].replicas == 2
    assert job.spec.pytorch_replica_specs["Worker"].template.spec.tolerations[0].key == "nvidia.com/gpu"


def test_cpu_job_has_no_gpu_limit_and_keeps_device() -> None:
    m = pytorchjob_manifest("cpu-job", IMAGE, [*ARGS, "--device", "cpu"], gpus_per_node=0, nproc_per_node=2,
                            shm_size=None)
    c = _container(m)
    assert "nvidia.com/gpu" not in c["resources"]["limits"]
    assert c["args"][-2:] == ["--device", "cpu"] and c["args"].count("--device") == 1
    assert "volumeMounts" not in c and "volumes" not in _pod(m)
    validate_pytorchjob(m)


def _launch(manifest: dict[str, Any], env: dict[str, str], tmp_path: Path, rtype: str = "Master") -> list[str]:
    """Run the container's command with /bin/sh and a stand-in ``torchrun`` that records its argv."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / "argv.txt"
    fake = bin_dir / "torchrun"
    fake.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "{record}"\n')
    fake.chmod(0o755)
    c = _container(manifest, rtype)
    pod_env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    full_env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", **pod_env, **env}
    subprocess.run([*c["command"], *c["args"]], env=full_env, check=True, timeout=30)
    return record.read_text().splitlines()


def test_torchrun_reads_the_operator_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the launcher, then parse torchrun's argv with torchrun's own parser in the operator's environment."""
    from torch.distributed.run import get_args_parser

    import lgmsnet.cli

    out = tmp_path / "runs" / "r1"
    args_in = ["--data", "/workspace/data/isic", "--out", str(out), "--epochs", "100", "--set", "optim.lr=0.02"]
    m = pytorchjob_manifest("lgmsnet-ddp", IMAGE, args_in, nodes=3, nproc_per_node=2, gpus_per_node=2)
    # What pkg/controller.v1/pytorch/envvar.go sets on worker 0 (node rank 1) when nprocPerNode is set.
    operator_env = {"MASTER_ADDR": "lgmsnet-ddp-master-0", "MASTER_PORT": "23456", "PET_NNODES": "3",
                    "PET_NODE_RANK": "1", "PET_NPROC_PER_NODE": m["spec"]["nprocPerNode"]}
    argv = _launch(m, operator_env, tmp_path, "Worker")
    for key, value in operator_env.items():
        monkeypatch.setenv(key, value)
    args = get_args_parser().parse_args(argv)
    assert (args.nnodes, args.node_rank, args.nproc_per_node) == ("3", 1, "2")
    assert (args.master_addr, args.master_port) == ("lgmsnet-ddp-master-0", 23456)
    assert args.module and args.training_script == "lgmsnet.cli"
    assert args.training_script_args == ["train", *args_in, "--device", "cuda"]  # passed through verbatim
    # and the library's CLI accepts what follows `-m lgmsnet.cli`
    parsed = lgmsnet.cli.build_parser().parse_args(args.training_script_args)
    assert (parsed.command, parsed.out, parsed.device, parsed.epochs, parsed.resume) == (
        "train", str(out), "cuda", 100, False)

    # a restarted pod finds the run's last checkpoint and resumes instead of failing on the existing run
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "last.pt").write_bytes(b"")
    argv = _launch(m, operator_env, tmp_path)
    assert argv[-1] == "--resume"
    assert lgmsnet.cli.build_parser().parse_args(get_args_parser().parse_args(argv).training_script_args).resume


def test_launcher_never_interprets_the_arguments(tmp_path: Path) -> None:
    hostile = ["--out", str(tmp_path / "o"), "--set", "data.path=$(touch pwned); `touch pwned2`", "--data", "a b"]
    m = pytorchjob_manifest("j", IMAGE, hostile, gpus_per_node=0)
    argv = _launch(m, {"MASTER_ADDR": "j-master-0", "MASTER_PORT": "23456"}, tmp_path)
    assert argv[-len(hostile):] == hostile
    assert not list(tmp_path.glob("pwned*")) and not list(Path.cwd().glob("pwned*"))


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"name": "LGMSNet_train"}, "DNS-1035"),
        ({"name": "x" * 60, "nodes": 20}, "too long"),
        ({"image": "has space:1"}, "image must be"),
        ({"nodes": 0}, "nodes must be an integer >= 1"),
        ({"nproc_per_node": 4, "gpus_per_node": 2}, "exceeds gpus_per_node=2"),
        ({"gpus_per_node": -1}, "gpus_per_node must be"),
        ({"cpu": "lots"}, "cpu must be a positive Kubernetes quantity"),
        ({"memory": "0"}, "memory must be a positive"),
        ({"clean_pod_policy": "Sometimes"}, "clean_pod_policy must be one of None, Running, All"),
        ({"env": {"MLFLOW_TRACKING_PASSWORD": "hunter2"}}, "secret_env={'MLFLOW_TRACKING_PASSWORD'"),
        ({"env": {"BAD-NAME": "x"}}, "not a valid variable name"),
        ({"secret_env": {"AWS_ACCESS_KEY_ID": "lgmsnet-s3"}}, "must be (secret name, key)"),
        ({"secret_env": {"X": ("Bad_Secret", "k")}}, "secret name must be a DNS-1123 name"),
        ({"train_args": ["--data", "/d"]}, "must include --out"),
        ({"train_args": ["train", "--out", "/o"]}, "do not include the command"),
        ({"train_args": "--data /d --out /o"}, "must be a list of options"),
        ({"train_args": [*ARGS, "--device", "cpu"]}, "the GPUs would sit idle"),
        ({"train_args": [*ARGS, "--set", "train.device=cuda:1"]}, "use plain 'cuda'"),
        ({"train_args": [*ARGS, "--device=cuda"], "gpus_per_node": 0}, "gpus_per_node=0"),
        ({"volume_claim": "Work_Dir"}, "volume_claim must be a DNS-1123"),
        ({"mount_path": "workspace"}, "mount_path must be an absolute path"),
        ({"node_selector": {"pool": "gpu nodes"}}, "not a valid label value"),
        ({"active_deadline_s": 0}, "active_deadline_s must be"),
    ],
)
def test_ill_arguments_are_named(kwargs: dict[str, Any], expected: str) -> None:
    base: dict[str, Any] = {"name": "lgmsnet-train", "image": IMAGE, "train_args": ARGS}
    base.update(kwargs)
    with pytest.raises(ManifestError) as err:
        pytorchjob_manifest(base.pop("name"), base.pop("image"), base.pop("train_args"), **base)
    assert expected in str(err.value)


def test_every_problem_is_listed_in_one_message() -> None:
    with pytest.raises(ManifestError) as err:
        pytorchjob_manifest("Bad_Name", IMAGE, ["--data", "/d"], nodes=0, cpu="lots")
    text = str(err.value)
    assert "4 problem(s)" in text
    for part in ("DNS-1035", "nodes must be", "cpu must be", "--out"):
        assert part in text


# --------------------------------------------------------------------------------------------- validation


def _valid() -> dict[str, Any]:
    return pytorchjob_manifest("lgmsnet-ddp", IMAGE, ARGS, nodes=2)


def _break(path: str, value: Any) -> dict[str, Any]:
    m = copy.deepcopy(_valid())
    node: Any = m
    *parents, leaf = path.split(".")
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return m


_DELETE = object()
_POD = "spec.pytorchReplicaSpecs.Worker.template.spec"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("apiVersion", "kubeflow.org/v2", "$.apiVersion must be kubeflow.org/v1"),
        ("kind", "TFJob", "$.kind must be PyTorchJob"),
        ("spec.pytorchReplicaSpecs.Master.replicas", 2, "Master.replicas must be 1"),
        ("spec.pytorchReplicaSpecs.Chief", {"replicas": 1}, "unknown replica type"),
        (f"{_POD}.containers.0.name", "trainer", "one named 'pytorch'"),
        ("spec.nprocPerNode", 2, "nprocPerNode must be a string"),
        ("spec.runPolicy.cleanPodPolicy", "Sometimes", "cleanPodPolicy must be one of"),
        # caught by the SDK model classes, reported with the path
        (f"{_POD}.nodeSelectr", {"a": "b"}, f"$.{_POD}.nodeSelectr: unknown field of V1PodSpec"),
        ("spec.pytorchReplicaSpecs.Worker.replicas", "2", "Worker.replicas: expected int, got str"),
        (f"{_POD}.containers.0.resources.limits.cpu", 8, "limits.cpu: expected str, got int"),
        (f"{_POD}.containers.0.image", ["x"], "image: expected str, got list"),
        ("spec.runPolicy", _DELETE, "Invalid value for `run_policy`, must not be `None`"),
        (f"{_POD}.tolerations", [{"key": "k", "operatr": "Exists"}], "operatr: unknown field of V1Toleration"),
    ],
)
def test_validation_reports_the_path(path: str, value: Any, expected: str) -> None:
    with pytest.raises(ManifestError) as err:
        validate_pytorchjob(_break(path, value))
    assert expected in str(err.value)


def test_missing_required_container_name_fails_in_the_sdk_model() -> None:
    m = _valid()
    m["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"].append({"image": IMAGE})
    with pytest.raises(ManifestError, match=r"V1Container\): Invalid value for `name`, must not be `None`"):
        validate_pytorchjob(m)


# --------------------------------------------------------------------------------------------- submission


class ApiError(Exception):
    """Stands in for kubernetes.client.ApiException (same ``status``/``reason`` attributes)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"({status}) Reason: {reason}")
        self.status = status
        self.reason = reason


class FakeCustomObjectsApi:
    """Scripted ``CustomObjectsApi``: each ``get`` returns the next status (or raises it, if an exception)."""

    def __init__(self, statuses: list[Any], create_error: Exception | None = None) -> None:
        self.statuses = list(statuses)
        self.create_error = create_error
        self.created: list[dict[str, Any]] = []
        self.gets = 0
        self.deleted: list[str] = []

    def create_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                        body: dict[str, Any]) -> dict[str, Any]:
        if self.create_error is not None:
            raise self.create_error
        self.created.append({"group": group, "version": version, "namespace": namespace, "plural": plural,
                             "body": body})
        return {**body, "status": {}}

    def get_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                     name: str) -> dict[str, Any]:
        assert (group, version, plural) == ("kubeflow.org", "v1", "pytorchjobs")
        self.gets += 1
        item = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if isinstance(item, Exception):
            raise item
        return {"metadata": {"name": name, "namespace": namespace}, "status": {"conditions": item}}

    def delete_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                        name: str) -> dict[str, Any]:
        self.deleted.append(name)
        return {}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _cond(kind: str, status: str = "True", reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


CREATED = [_cond("Created", reason="PyTorchJobCreated")]
RUNNING = [*CREATED, _cond("Running", reason="PyTorchJobRunning")]


def test_submit_waits_until_succeeded() -> None:
    succeeded = [*CREATED, _cond("Running", "False"), _cond("Succeeded", reason="PyTorchJobSucceeded")]
    api = FakeCustomObjectsApi([[], CREATED, RUNNING, RUNNING, succeeded])
    clock = FakeClock()
    m = _valid()
    name = submit_and_wait(m, custom_objects_api=api, timeout_s=3600, poll_s=10, sleep=clock.sleep, clock=clock)
    assert name == "lgmsnet-ddp"
    assert api.created == [{"group": "kubeflow.org", "version": "v1", "namespace": "kubeflow",
                            "plural": "pytorchjobs", "body": m}]
    assert api.gets == 5 and clock.sleeps == [10, 10, 10, 10]


def test_failed_job_raises_with_the_operator_message() -> None:
    failed = _cond("Failed", reason="PyTorchJobFailed",
                   message="PyTorchJob kubeflow/lgmsnet-ddp is failed because 1 Worker replica(s) failed.")
    api = FakeCustomObjectsApi([CREATED, RUNNING, [*RUNNING, failed]])
    clock = FakeClock()
    with pytest.raises(JobFailedError) as err:
        submit_and_wait(_valid(), custom_objects_api=api, timeout_s=3600, poll_s=5, sleep=clock.sleep, clock=clock)
    text = str(err.value)
    assert "kubeflow/lgmsnet-ddp failed" in text and "1 Worker replica(s) failed" in text
    assert "PyTorchJobFailed" in text and "kubectl -n kubeflow logs lgmsnet-ddp-master-0" in text
    assert err.value.condition == failed and err.value.name == "lgmsnet-ddp"


def test_timeout_names_the_last_condition_and_can_delete() -> None:
    api = FakeCustomObjectsApi([CREATED, RUNNING])
    clock = FakeClock()
    with pytest.raises(JobTimeoutError) as err:
        submit_and_wait(_valid(), custom_objects_api=api, timeout_s=60, poll_s=25, sleep=clock.sleep, clock=clock,
                        delete_on_timeout=True)
    assert "did not finish within 60 s" in str(err.value) and "Running (reason: PyTorchJobRunning" in str(err.value)
    assert "it was deleted" in str(err.value) and api.deleted == ["lgmsnet-ddp"]
    assert clock.sleeps == [25, 25, 10]  # never sleeps past the deadline

    api, clock = FakeCustomObjectsApi([[]]), FakeClock()
    with pytest.raises(JobTimeoutError, match="no status condition yet .* left running"):
        submit_and_wait(_valid(), custom_objects_api=api, timeout_s=1, poll_s=1, sleep=clock.sleep, clock=clock)
    assert api.deleted == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [(409, "already exists in 'kubeflow'; delete it"), (403, "grant RBAC 'create'"),
     (404, "install the Kubeflow Training Operator")],
)
def test_create_errors_are_explained(status: int, expected: str) -> None:
    api = FakeCustomObjectsApi([[]], create_error=ApiError(status, "Nope"))
    with pytest.raises(JobError, match=re.escape(expected)):
        submit_and_wait(_valid(), custom_objects_api=api, timeout_s=1, poll_s=1)
    assert api.gets == 0


def test_transient_read_errors_are_retried_then_fatal_ones_raise() -> None:
    clock = FakeClock()
    api = FakeCustomObjectsApi([ApiError(503, "Unavailable"), ConnectionError("reset"),
                                [*RUNNING, _cond("Succeeded")]])
    assert submit_and_wait(_valid(), custom_objects_api=api, timeout_s=600, poll_s=1, sleep=clock.sleep,
                           clock=clock) == "lgmsnet-ddp"
    api = FakeCustomObjectsApi([CREATED, ApiError(403, "Forbidden")])
    with pytest.raises(JobError, match="HTTP 403"):
        submit_and_wait(_valid(), custom_objects_api=api, timeout_s=600, poll_s=1, sleep=clock.sleep, clock=clock)
    api = FakeCustomObjectsApi([ApiError(500, "boom")])
    with pytest.raises(JobError, match="3 consecutive failure"):
        submit_and_wait(_valid(), custom_objects_api=api, timeout_s=600, poll_s=1, sleep=clock.sleep, clock=clock,
                        max_poll_errors=2)


def test_invalid_manifest_is_never_sent() -> None:
    api = FakeCustomObjectsApi([[]])
    with pytest.raises(ManifestError):
        submit_and_wait(_break("kind", "TFJob"), custom_objects_api=api, timeout_s=1, poll_s=1)
    assert api.created == []


def test_without_the_sdk_the_operator_rules_still_apply(monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    import components.k8s as k8s

    assert validate_pytorchjob(_valid(), sdk=False) is None
    with pytest.raises(ManifestError, match="one named 'pytorch'"):
        validate_pytorchjob(_break(f"{_POD}.containers.0.name", "trainer"), sdk=False)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'kubeflow-training==1\.9\.4'"):
        k8s._sdk_models("kubeflow.training.no_such_models", "kubeflow-training==1.9.4")
    # where kubeflow-training is absent (e.g. a pipeline step's image), submission still works, with a warning
    monkeypatch.setattr(k8s, "sdk_available", lambda module: False)
    clock = FakeClock()
    with caplog.at_level("WARNING", logger="components.k8s"):
        assert submit_and_wait(_valid(), custom_objects_api=FakeCustomObjectsApi([[_cond("Succeeded")]]),
                               timeout_s=10, poll_s=1, sleep=clock.sleep, clock=clock) == "lgmsnet-ddp"
    assert "kubeflow-training is not installed" in caplog.text


def test_namespace_is_a_dns1123_label() -> None:
    assert pytorchjob_manifest("j", IMAGE, ARGS, namespace="1team")["metadata"]["namespace"] == "1team"
    with pytest.raises(ManifestError, match="namespace must be a DNS-1123 label"):
        pytorchjob_manifest("j", IMAGE, ARGS, namespace="Team_A")
