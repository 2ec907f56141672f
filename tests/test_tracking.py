"""Experiment tracking and the pyfunc model against an embedded SQLite MLflow store (no server)."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lgmsnet
from components.mlflow_model import SegmentationModel, log_model
from components.tracking import (
    DatasetVersion,
    MLflowWriter,
    TrackingError,
    TrackingSettings,
    bounded_http,
    client,
    default_tracking_uri,
    learning_curves_png,
    log_run_artifacts,
)
from lgmsnet.checkpoint import save_checkpoint
from lgmsnet.data import synthesize
from tests.mlflowserver import free_port

mlflow = pytest.importorskip("mlflow")

FAST = TrackingSettings(max_retries=1, backoff_factor=0, timeout_s=5, health_timeout_s=0.5)


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return default_tracking_uri(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = lgmsnet.create_model("lgmsnet_tiny")
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    return save_checkpoint(
        path, model, epoch=1, config={"data": {"image_size": 64}},
        data={"fingerprint": "f" * 64, "path": "/data/synth", "synthetic": True}, metrics={"val_dice": 0.5},
        optimizer={"state": {}, "param_groups": []},
    )


def _two_images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8), rng.integers(0, 256, (96, 64, 3), dtype=np.uint8)]


def _small_onnx(path: Path) -> Path:
    """A valid (identity) ONNX model, standing in for an export in logging tests."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["logits"])], "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["B", 3, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", 3, "H", "W"])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


# ---------------------------------------------------------------------------------------------- writer


def test_writer_logs_flat_params_metrics_per_epoch_and_system_tags(uri: str) -> None:
    with MLflowWriter(uri, "writer-test", run_name="r1", tags={"team": "seg"}) as writer:
        writer.log_params({"model": {"name": "lgmsnet_tiny", "kwargs": {}}, "train": {"device": "cpu", "epochs": 2},
                           "data": {"ratios": [0.7, 0.15, 0.15]}})
        for epoch, (loss, dice) in enumerate([(0.9, 0.2), (0.5, 0.4)], 1):
            writer.log_metrics({"train_loss": loss, "val_dice": dice, "note": "skipped"}, epoch)
        writer.log_params({"train": {"device": "cpu", "epochs": 3}})  # a resume that changed epochs
    run = client(uri).get_run(writer.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "r1"
    p = run.data.params
    assert p["model.name"] == "lgmsnet_tiny" and p["train.epochs"] == "2" and p["data.ratios"] == "[0.7, 0.15, 0.15]"
    tags = run.data.tags
    assert tags["param_override.train.epochs"] == "3"
    assert tags["team"] == "seg" and tags["device"] == "cpu"
    assert tags["torch.version"] == torch.__version__ and tags["lgmsnet.version"] == lgmsnet.__version__
    assert tags["host.name"] and "mlflow" in json.loads(tags["packages"])
    if "git.commit" in tags:
        assert len(tags["git.commit"]) == 40 and tags["mlflow.source.git.commit"] == tags["git.commit"]
    history = client(uri).get_metric_history(writer.run_id, "val_dice")
    assert [(m.step, m.value) for m in history] == [(1, 0.2), (2, 0.4)]
    assert "note" not in run.data.metrics


def test_a_failing_block_marks_the_run_failed_with_the_error(uri: str) -> None:
    with pytest.raises(RuntimeError, match="boom"), MLflowWriter(uri, "writer-test") as writer:
        writer.log_metrics({"train_loss": 1.0}, 1)
        raise RuntimeError("boom")
    run = client(uri).get_run(writer.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["lgmsnet.error"] == "RuntimeError: boom"


def test_unreachable_server_is_a_clear_error_after_bounded_retries() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(TrackingError) as info:
        MLflowWriter(dead, "x", settings=FAST)
    assert time.monotonic() - started < 10
    text = str(info.value)
    assert dead in text and "2 attempt(s)" in text and "Nothing was written" in text


def test_bounded_http_sets_only_unset_variables_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "77")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    with bounded_http(TrackingSettings(max_retries=1)):
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "77"  # the user's setting wins
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "77"


# ---------------------------------------------------------------------------------------------- training run


def test_training_run_is_tracked_end_to_end(uri: str, tmp_path: Path) -> None:
    from lgmsnet.config import load_config
    from lgmsnet.engine import train

    data = synthesize(tmp_path / "synth", 12, "source", seed=3, size=32)
    cfg = load_config(None, {
        "model.name": "lgmsnet_tiny", "data.path": str(data), "data.image_size": 32, "data.ratios": [0.5, 0.25, 0.25],
        "data.cache_dir": str(tmp_path / "cache"), "train.epochs": 2, "train.batch_size": 2, "train.threads": 1,
    })
    run_dir = tmp_path / "run"
    with MLflowWriter(uri, "e2e", device="cpu") as writer:
        train(cfg, run_dir, writers=[writer])
        assert client(uri).get_run(writer.run_id).info.status == "FINISHED"  # the trainer closed the writer
        version = DatasetVersion.from_folder(data, name="synth-source")
        uploaded = log_run_artifacts(writer.run_id, run_dir, tracking_uri=uri, dataset_version=version)
    run = client(uri).get_run(writer.run_id)
    assert run.data.params["train.epochs"] == "2"
    assert [m.step for m in client(uri).get_metric_history(writer.run_id, "train_loss")] == [1, 2]
    for expected in ("config/config.yaml", "training/metrics.csv", "plots/learning_curves.png",
                     "training/summary.json", "evaluation/test/metrics.json"):
        assert expected in uploaded.artifacts
    listed = {f.path for f in client(uri).list_artifacts(writer.run_id, "plots")}
    assert listed == {"plots/learning_curves.png"}
    tags = run.data.tags
    assert tags["dataset.name"] == "synth-source" and tags["dataset.synthetic"] == "true"
    assert tags["dataset.fingerprint"] == version.fingerprint
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "synth-source"
    assert dataset_input.dataset.digest == version.digest
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "training"


def test_learning_curves_png_is_drawn_from_metrics_csv(tmp_path: Path) -> None:
    csv_path = tmp_path / "metrics.csv"
    with csv_path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "train_loss", "lr", "val_dice", "val_iou"])
        w.writerows([[1, 0.9, 0.01, 0.2, 0.1], [2, 0.6, 0.005, 0.4, 0.3], [3, 0.5, 0.001, "nan", 0.35]])
    png = learning_curves_png(csv_path, tmp_path / "lc.png")
    with Image.open(png) as im:
        assert im.size == (1000, 400)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="no rows"):
        learning_curves_png(tmp_path / "empty.csv", tmp_path / "x.png")


def test_dataset_version_from_dvc_file(tmp_path: Path) -> None:
    data = synthesize(tmp_path / "images-set", 2, "source", seed=0, size=32)
    dvc = tmp_path / "images-set.dvc"
    dvc.write_text("outs:\n- md5: 0123456789abcdef0123456789abcdef.dir\n  size: 100\n  nfiles: 4\n"
                   "  hash: md5\n  path: images-set\n")
    version = DatasetVersion.from_dvc(dvc, source="s3://bucket/dvcstore")
    assert version.md5 == "0123456789abcdef0123456789abcdef" and version.digest == version.md5
    assert version.name == "images-set" and version.n_files == 4 and version.synthetic
    assert "synthetic" in (version.licence or "")
    assert version.to_tags()["dataset.source"] == "s3://bucket/dvcstore"
    assert data.is_dir()
    (tmp_path / "broken.dvc").write_text("outs: []\n")
    with pytest.raises(ValueError, match="broken.dvc has no `outs"):
        DatasetVersion.from_dvc(tmp_path / "broken.dvc")


# ---------------------------------------------------------------------------------------------- pyfunc model


def test_logged_pyfunc_model_segments_images_of_any_size(
    uri: str, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # models:/ URIs resolve through the process-wide URI
    onnx = _small_onnx(tmp_path / "m.onnx")  # a real export takes ~15 s here; lgmsnet's own tests cover it
    with MLflowWriter(uri, "models") as writer:
        result = log_model(writer.run_id, checkpoint, onnx, tracking_uri=uri)
    assert result.onnx_logged and result.model_uri == f"models:/{result.model_id}"
    run = client(uri).get_run(writer.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["lgmsnet.model_id"] == result.model_id

    local = Path(mlflow.artifacts.download_artifacts(result.model_uri, dst_path=str(tmp_path / "dl")))
    served = torch.load(local / "data" / "lgmsnet" / "checkpoint.pt", weights_only=True)
    assert "optimizer" not in served and served["model_name"] == "lgmsnet_tiny"
    assert (local / "data" / "lgmsnet" / "model.onnx").stat().st_size > 0

    model = mlflow.pyfunc.load_model(result.model_uri)
    assert os.environ["MLFLOW_TRACKING_URI"] == uri  # log_model restored the caller's setting
    a, b = _two_images()
    masks = model.predict([a, b])
    assert [m.shape for m in masks] == [(64, 96), (96, 64)]
    assert all(m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1} for m in masks)
    batch = model.predict(np.stack([a, a, a]))
    assert batch.shape == (3, 64, 96) and np.array_equal(batch[0], masks[0])
    probs = model.predict([b], params={"output": "probability"})
    assert probs[0].dtype == np.float32 and 0.0 <= probs[0].min() <= probs[0].max() <= 1.0
    assert np.array_equal(model.predict([a.astype(np.float32) / 255.0])[0], masks[0])
    assert model.predict([a[..., 0]])[0].shape == (64, 96)  # grey input, replicated to RGB

    # no train/serve skew: the same masks as `lgmsnet predict` on the same files
    from lgmsnet.evaluation import predict

    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(a).save(folder / "a.png")
    Image.fromarray(b).save(folder / "b.png")
    paths = predict(checkpoint, folder, tmp_path / "pred")
    expected = [np.asarray(Image.open(p)) // 255 for p in paths]
    assert all(np.array_equal(e, m) for e, m in zip(expected, masks, strict=True))


@pytest.mark.parametrize(
    ("bad", "params", "error", "fragment"),
    [
        (np.zeros((64, 64, 3), np.uint8), None, ValueError, "must be a batch (B, H, W, C)"),
        ([np.zeros((8, 8, 4), np.uint8)], None, ValueError, "expected (H, W) grey, (H, W, 1) grey or (H, W, 3) RGB"),
        ([np.full((8, 8, 3), 2.0, np.float32)], None, ValueError, "float images must lie in [0, 1]"),
        ([np.full((8, 8, 3), 300, np.int64)], None, ValueError, "integer images must lie in [0, 255]"),
        ([], None, ValueError, "holds no image"),
        ("image.png", None, TypeError, "must be a numpy array (B, H, W, C) or a list"),
        ([np.zeros((8, 8, 3), np.uint8)], {"threshold": 1.5}, ValueError, "params['threshold'] must be a probability"),
        ([np.zeros((8, 8, 3), np.uint8)], {"output": "logits"}, ValueError, "params['output'] must be one of"),
        ([np.zeros((8, 8, 3), np.uint8)], {"tta": True}, ValueError, "unknown params ['tta']"),
    ],
)
def test_bad_inputs_are_named(checkpoint: Path, bad: object, params: dict | None, error: type, fragment: str) -> None:
    model = SegmentationModel(checkpoint)
    with pytest.raises(error) as info:
        model.predict(bad, params)  # type: ignore[arg-type]
    assert fragment in str(info.value)


def test_tiny_and_odd_sizes_are_valid(checkpoint: Path) -> None:
    model = SegmentationModel(checkpoint)
    out = model.predict([np.zeros((1, 1, 3), np.uint8), np.zeros((33, 250), np.uint8)])
    assert [m.shape for m in out] == [(1, 1), (33, 250)]


def test_a_malformed_onnx_file_is_refused_before_logging(uri: str, checkpoint: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ValueError, match="bad.onnx is not a valid ONNX model"):
        log_model("no-such-run", checkpoint, bad, tracking_uri=uri)


def test_a_multiclass_checkpoint_is_refused(tmp_path: Path) -> None:
    from lgmsnet.checkpoint import CheckpointError

    path = save_checkpoint(tmp_path / "mc.pt", lgmsnet.create_model("lgmsnet_tiny", num_classes=3))
    with pytest.raises(CheckpointError, match="num_classes=3"):
        SegmentationModel(path)
