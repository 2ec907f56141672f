"""The PyTorchJob training step, end to end up to the Kubernetes API: a fake CustomObjectsApi plays the Training
Operator by running the job's Master container command here, with the environment the operator sets (2 processes,
real ``torchrun``, gloo on CPU). The finished run is then logged to a real (SQLite) MLflow store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.pipeline_steps import train_with_pytorchjob
from lgmsnet.checkpoint import load_checkpoint
from lgmsnet.data import synthesize

from .conftest import REPO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _LocalOperator:
    """Runs the Master replica's container command like the Training Operator would (single node)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.returncode: int | None = None
        self.stderr = ""
        self.created: dict[str, Any] = {}

    def create_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                        body: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.created = body
        spec = body["spec"]
        container = spec["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
        env = dict(os.environ)
        env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
        env.update(
            MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), PET_NNODES="1", PET_NODE_RANK="0",
            PET_NPROC_PER_NODE=str(spec["nprocPerNode"]), OMP_NUM_THREADS="1", NO_ALBUMENTATIONS_UPDATE="1",
            LGMSNET_CACHE=str(self.tmp / "cache"), PYTHONPATH=str(REPO),
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        res = subprocess.run([*container["command"], *container["args"]], env=env, capture_output=True, text=True,
                             timeout=600)
        self.returncode, self.stderr = res.returncode, res.stderr
        return {**body, "status": {}}

    def get_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str,
                                     **_: Any) -> dict[str, Any]:
        kind = "Succeeded" if self.returncode == 0 else "Failed"
        return {"metadata": {"name": name}, "status": {"conditions": [
            {"type": kind, "status": "True", "reason": kind, "message": self.stderr[-500:]}]}}

    def delete_namespaced_custom_object(self, *a: Any, **k: Any) -> None:
        pass


@pytest.mark.integration
def test_pytorchjob_step_trains_with_torchrun_and_logs_to_mlflow(tmp_path) -> None:
    import mlflow

    data = synthesize(tmp_path / "src", 24, "source", seed=2, size=64)
    op = _LocalOperator(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = train_with_pytorchjob(
        data, tmp_path / "pvc" / "job1", job_name="lgmsnet-train-test", image="lgmsnet:test",
        tracking_uri=uri, experiment="pytorchjob-test", nodes=1, nproc_per_node=2, gpus_per_node=0,
        volume_claim="lgmsnet-work", mount_path=str(tmp_path / "pvc"), custom_objects_api=op, poll_s=0,
        overrides={"model.name": "lgmsnet_tiny", "data.image_size": 64, "train.epochs": 1, "train.batch_size": 2,
                   "train.threads": 1, "data.cache_dir": str(tmp_path / "cache")},
    )
    assert op.returncode == 0, op.stderr[-3000:]
    run_dir = tmp_path / "pvc" / "job1" / "run"
    assert "world size 2" in op.stderr
    assert load_checkpoint(run_dir / "checkpoints" / "best.pt")["model_name"] == "lgmsnet_tiny"
    run = mlflow.MlflowClient(uri).get_run(out.run_id)
    assert "model.parameters" in run.data.metrics and "val_dice" in run.data.metrics
    assert Path(out.onnx).is_file()
    # the job ran the same entry point as the pipeline's in-pod training and `torchrun -m lgmsnet.cli train`
    command = op.created["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["command"]
    assert "torchrun" in command[2] and "-m lgmsnet.cli train" in command[2]
