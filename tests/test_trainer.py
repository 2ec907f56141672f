"""The training engine: config validation, outputs, resume after SIGKILL, NaN guard, 2-process DDP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from lgmsnet.checkpoint import load_checkpoint, model_from_checkpoint
from lgmsnet.config import ConfigError, load_config
from lgmsnet.data import SegmentationDataset, build_transforms, load_manifest, synthesize
from lgmsnet.engine import TrainingDivergedError, poly_lambda, train
from lgmsnet.metrics import SegmentationMeter

from .conftest import REPO


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return synthesize(tmp_path_factory.mktemp("data") / "src", 40, "source", seed=1, size=64)


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        NO_ALBUMENTATIONS_UPDATE="1",
        LGMSNET_CACHE=str(tmp_path / "cache"),
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(REPO),
    )
    return env


def _tiny_cfg(data: Path, tmp_path: Path, **over):
    base = {
        "model.name": "lgmsnet_tiny",
        "data.path": str(data),
        "data.image_size": 64,
        "data.cache_dir": str(tmp_path / "cache"),
        "train.epochs": 2,
        "train.batch_size": 4,
        "train.threads": 1,
        "optim.lr": 0.05,
    }
    base.update(over)
    return load_config(None, base)


# ----------------------------------------------------------------------------------------------------- config


def test_unknown_config_key_is_rejected_with_valid_keys(tmp_path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"train": {"epochz": 3}}))
    with pytest.raises(ConfigError, match=r"cfg.yaml: unknown key\(s\) 'epochz' in train; valid keys: epochs, batch_size"):
        load_config(cfg)


@pytest.mark.parametrize(
    "doc,match",
    [
        ({"optimizer": {"lr": 1}}, r"unknown key\(s\) 'optimizer' in config; valid keys: model, data, optim, train"),
        ({"train": {"epochs": "ten"}}, "train.epochs: expected an integer, got 'ten'"),
        ({"data": {"image_size": 250}}, "multiple of 32"),
        ({"data": {"recipe": "heavy"}}, "data.recipe 'heavy' is unknown; valid: kvasir, none, reference"),
        ({"model": {"name": "unet"}}, "model.name 'unet' is unknown"),
        ({"data": {"ratios": [0.8, 0.0, 0.2]}}, "validation share must be > 0"),
        ({"train": {"device": "tpu"}}, "train.device must be cpu, cuda or cuda:N"),
    ],
)
def test_bad_config_values(tmp_path, doc, match) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=match):
        load_config(cfg)


def test_invalid_yaml_names_the_file(tmp_path) -> None:
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("train: [epochs: 3\n")
    with pytest.raises(ConfigError, match="broken.yaml is not valid YAML"):
        load_config(cfg)


def test_poly_schedule_matches_reference_formula() -> None:
    f = poly_lambda(100, 0.9)
    assert f(0) == 1.0
    assert f(50) == pytest.approx(0.5**0.9)
    assert f(100) == 0.0
    w = poly_lambda(100, 0.9, warmup_iters=10)
    assert w(0) == pytest.approx(0.1) and w(9) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------- training


def test_train_writes_run_and_picks_best_on_validation(synth, tmp_path) -> None:
    cfg = _tiny_cfg(synth, tmp_path, **{"train.epochs": 3})
    res = train(cfg, tmp_path / "run")
    run = tmp_path / "run"
    for name in ("config.yaml", "splits.json", "metrics.csv", "metrics.jsonl", "summary.json", "test/metrics.json"):
        assert (run / name).is_file(), name
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    best_row = max(rows, key=lambda r: r["val_dice"])
    assert res.best_epoch + 1 == best_row["step"]
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert best["epoch"] == res.best_epoch and last["epoch"] == 2
    for key in ("optimizer", "scheduler", "rng", "config", "data", "model_kwargs"):
        assert key in last
    assert last["data"]["synthetic"] is True
    # the test split never took part in model selection and is disjoint from the validation split
    manifest = load_manifest(run / "splits.json")
    assert not set(manifest.test) & (set(manifest.val) | set(manifest.train))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_metrics"]["n_images"] == len(manifest.test)
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 3
    # an existing run is never silently overwritten
    with pytest.raises(ConfigError, match="already holds a run"):
        train(cfg, run)


def test_validation_metrics_equal_an_independent_evaluation(synth, tmp_path) -> None:
    cfg = _tiny_cfg(synth, tmp_path, **{"train.epochs": 1, "train.test_after_training": False})
    train(cfg, tmp_path / "run")
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    model = model_from_checkpoint(ckpt).eval()
    manifest = load_manifest(tmp_path / "run" / "splits.json")
    ds = SegmentationDataset(synth, stems=manifest.val, transform=build_transforms("none", 64, False))
    meter = SegmentationMeter()
    with torch.no_grad():
        for item in ds:
            meter.update(model(item["image"][None]), item["mask"][None], stems=[item["stem"]])
    assert meter.compute()["dice"] == pytest.approx(ckpt["metrics"]["val_dice"], abs=1e-6)


def test_nan_loss_stops_the_run_and_writes_nothing(synth, tmp_path) -> None:
    run = tmp_path / "run"
    train(_tiny_cfg(synth, tmp_path, **{"train.epochs": 1, "train.test_after_training": False}), run)
    last = run / "checkpoints" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    ckpt["state_dict"]["head.bias"].fill_(float("nan"))  # weights poisoned, e.g. by a bad earlier step
    torch.save(ckpt, last)
    before = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    with pytest.raises(TrainingDivergedError, match=r"non-finite loss \(nan\) at epoch 2, step 1.*Lower optim.lr"):
        train(_tiny_cfg(synth, tmp_path, **{"train.epochs": 2}), run, resume=True)
    after = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    assert before == after


def test_too_small_training_split_is_named(tmp_path) -> None:
    data = synthesize(tmp_path / "few", 6, "source", seed=0, size=64)
    with pytest.raises(ConfigError, match="fewer than train.batch_size=8"):
        train(_tiny_cfg(data, tmp_path, **{"train.batch_size": 8}), tmp_path / "run")


def test_resume_without_checkpoint_is_named(synth, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"last.pt does not exist"):
        train(_tiny_cfg(synth, tmp_path), tmp_path / "nothing", resume=True)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lgmsnet.cli", *args]


def _state(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["state_dict"]


def test_resume_after_sigkill_matches_uninterrupted(synth, tmp_path) -> None:
    common = ["train", "--data", str(synth), "--model", "lgmsnet_tiny", "--image-size", "64", "--epochs", "3",
              "--set", "train.batch_size=4", "--set", "train.threads=1", "--set", "train.test_after_training=false",
              "--set", f"data.cache_dir={tmp_path / 'cache'}"]
    env = _env(tmp_path)
    ref = subprocess.run(_cli(*common, "--out", str(tmp_path / "a")), env=env, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr

    run_b = tmp_path / "b"
    proc = subprocess.Popen(_cli(*common, "--out", str(run_b)), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    last = run_b / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # well into the second epoch
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed, "the run finished before it could be killed; make the epochs longer"
    assert load_checkpoint(last)["epoch"] < 2
    assert not list((run_b / "checkpoints").glob("*.tmp"))

    res = subprocess.run(_cli(*common, "--out", str(run_b), "--resume"), env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    a, b = _state(tmp_path / "a" / "checkpoints" / "last.pt"), _state(last)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    rows = [json.loads(x)["step"] for x in (run_b / "metrics.jsonl").read_text().splitlines()]
    assert rows == [1, 2, 3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_torchrun_two_process_ddp_matches_single_process_metrics(synth, tmp_path) -> None:
    run = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
        "-m", "lgmsnet.cli", "train", "--data", str(synth), "--out", str(run), "--model", "lgmsnet_tiny",
        "--image-size", "64", "--epochs", "1", "--set", "train.batch_size=2", "--set", "train.threads=1",
        "--set", f"data.cache_dir={tmp_path / 'cache'}", "--set", "train.test_after_training=false",
    ]
    res = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2
    ckpt = load_checkpoint(run / "checkpoints" / "best.pt")
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
    model = model_from_checkpoint(ckpt).eval()
    manifest = load_manifest(run / "splits.json")
    ds = SegmentationDataset(synth, stems=manifest.val, transform=build_transforms("none", 64, False))
    meter = SegmentationMeter()
    with torch.no_grad():
        for item in ds:
            meter.update(model(item["image"][None]), item["mask"][None], stems=[item["stem"]])
    single = meter.compute()
    assert ckpt["metrics"]["val_n_images"] == len(manifest.val) == single["n_images"]
    for k in ("dice", "iou", "precision", "sensitivity"):
        assert ckpt["metrics"][f"val_{k}"] == pytest.approx(single[k], abs=1e-6), k
    # only rank 0 wrote: one row per epoch
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
