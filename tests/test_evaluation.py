"""Evaluation, zero-shot and prediction from a checkpoint (library level, tiny model, 64-pixel synthetic data).

The hand checks use checkpoints whose head is zeroed and whose bias is ±1e4, so the logits are exactly the bias:
all-foreground (Dice = 2|G| / (|G| + N) per image) or all-background (Dice 0 on non-empty GT, 1 on empty GT).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lgmsnet
from lgmsnet.checkpoint import CheckpointError, save_checkpoint
from lgmsnet.data import (
    DatasetError,
    build_transforms,
    dataset_fingerprint,
    make_splits,
    normalize_image,
    read_image,
    read_mask,
    synthesize,
    write_manifest,
)
from lgmsnet.evaluation import EMPTY_MASK_CONVENTION, evaluate, predict, resolve_image_policy, zero_shot

N_IMAGES = 6


def make_ckpt(path: Path, bias: float | None = None, in_channels: int = 3, num_classes: int = 1, **extra) -> Path:
    """A tiny checkpoint; with ``bias`` the logits are exactly ``bias`` (class 1 for two classes)."""
    torch.manual_seed(0)
    model = lgmsnet.create_model("lgmsnet_tiny", in_channels=in_channels, num_classes=num_classes)
    if bias is not None:
        with torch.no_grad():
            model.head.weight.zero_()
            model.head.bias.zero_()
            model.head.bias[-1] = bias
            if num_classes == 2:
                model.head.bias[0] = -bias
    return save_checkpoint(path, model, **extra)


def resize_dataset(src: Path, dst: Path, width: int, height: int) -> Path:
    """Copy a folder dataset resized to ``width x height`` (masks nearest, so they stay {0, 255})."""
    for sub, resample in (("images", Image.Resampling.BILINEAR), ("masks", Image.Resampling.NEAREST)):
        (dst / sub).mkdir(parents=True)
        for f in sorted((src / sub).iterdir()):
            Image.open(f).resize((width, height), resample).save(dst / sub / f.name)
    return dst


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval")
    src = synthesize(root / "src", N_IMAGES, domain="source", seed=0, size=64, empty_fraction=0.2)
    tgt = synthesize(root / "tgt", N_IMAGES, domain="target", seed=1, size=64)
    odd = resize_dataset(src, root / "odd", width=70, height=50)
    return {
        "src": src,
        "tgt": tgt,
        "odd": odd,
        "fg": make_ckpt(root / "fg.pt", bias=1e4),
        "bg": make_ckpt(root / "bg.pt", bias=-1e4),
        "rand": make_ckpt(root / "rand.pt"),
    }


def ground_truth(data_dir: Path) -> dict[str, np.ndarray]:
    return {p.stem: read_mask(p) for p in sorted((data_dir / "masks").iterdir())}


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def strict_json(path: Path) -> dict:
    def no_nan(token: str) -> float:
        raise AssertionError(f"{path} holds non-standard JSON {token}")

    return json.loads(path.read_text(), parse_constant=no_nan)


def test_evaluate_writes_metrics_per_image_and_overlays(data, tmp_path) -> None:
    out = tmp_path / "out"
    res = evaluate(data["rand"], data["src"], out, n_overlays=2)
    report = strict_json(out / "metrics.json")
    assert report == res.report
    for key in ("n_images", "metrics", "threshold", "image_size_policy", "checkpoint", "dataset", "lgmsnet_version",
                "timestamp", "empty_mask_convention"):
        assert key in report, key
    assert report["n_images"] == N_IMAGES == res.n_images
    assert report["empty_mask_convention"] == EMPTY_MASK_CONVENTION
    assert report["dataset"]["fingerprint"] == dataset_fingerprint(data["src"])
    assert report["dataset"]["path"] == str(data["src"].resolve())
    assert report["dataset"]["synthetic"] is True
    assert report["checkpoint"]["path"] == str(data["rand"].resolve())
    assert report["checkpoint"]["model_name"] == "lgmsnet_tiny"
    assert report["threshold"] == {"probability": 0.5, "mask_threshold": 127}
    assert report["image_size_policy"]["mode"] == "native"  # no size given, no config in the checkpoint
    assert report["lgmsnet_version"] == lgmsnet.__version__
    for name in ("dice", "iou", "sensitivity", "precision", "specificity", "accuracy", "hd95"):
        assert set(report["metrics"][name]) >= {"mean", "std"}, name

    rows = read_rows(out / "per_image.csv")
    assert len(rows) == N_IMAGES
    assert list(rows[0]) == ["stem", "height", "width", "dice", "iou", "sensitivity", "precision", "specificity",
                             "accuracy", "hd95", "tp", "fp", "fn", "tn"]
    assert sorted(r["stem"] for r in rows) == sorted(ground_truth(data["src"]))
    dice = [float(r["dice"]) for r in rows]
    assert report["metrics"]["dice"]["mean"] == pytest.approx(np.mean(dice))
    assert report["metrics"]["dice"]["std"] == pytest.approx(np.std(dice))

    best = sorted(rows, key=lambda r: (-float(r["dice"]), r["stem"]))
    names = sorted(p.name for p in (out / "overlays").iterdir())
    assert names == sorted(
        [f"best_{i}_{best[i - 1]['stem']}.png" for i in (1, 2)] + [f"worst_{i}_{best[-i]['stem']}.png" for i in (1, 2)]
    )
    overlay = Image.open(out / "overlays" / names[0])
    assert overlay.mode == "RGB" and overlay.height == 64 and overlay.width > 2 * 64

    evaluate(data["rand"], data["src"], out, n_overlays=1)  # a rerun replaces the previous overlays
    assert len(list((out / "overlays").iterdir())) == 2
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left behind


@pytest.mark.parametrize("num_classes", [1, 2])
def test_all_foreground_prediction_matches_hand_computed_dice(data, tmp_path, num_classes) -> None:
    ckpt = make_ckpt(tmp_path / "fg.pt", bias=1e4, num_classes=num_classes)
    res = evaluate(ckpt, data["src"], tmp_path / "out", n_overlays=0)
    gt = ground_truth(data["src"])
    for row in res.per_image:
        g, n = int(gt[row["stem"]].sum()), gt[row["stem"]].size
        assert (row["tp"], row["fp"], row["fn"], row["tn"]) == (g, n - g, 0, 0)
        assert row["dice"] == pytest.approx(2 * g / (g + n), abs=1e-12)
        assert row["iou"] == pytest.approx(g / n, abs=1e-12)
    expected = np.mean([2 * m.sum() / (m.sum() + m.size) for m in gt.values()])
    assert res.report["metrics"]["dice"]["mean"] == pytest.approx(expected, abs=1e-12)


def test_all_background_prediction_scores_empty_masks_as_perfect(data, tmp_path) -> None:
    res = evaluate(data["bg"], data["src"], tmp_path / "out", n_overlays=0)
    gt = ground_truth(data["src"])
    n_empty = sum(1 for m in gt.values() if not m.any())
    assert n_empty >= 1, "the fixture must contain an empty mask"
    for row in res.per_image:
        empty = not gt[row["stem"]].any()
        assert row["dice"] == (1.0 if empty else 0.0)
        assert row["iou"] == (1.0 if empty else 0.0)
        assert row["hd95"] == 0.0 if empty else math.isnan(row["hd95"])
    hd = res.report["metrics"]["hd95"]
    assert (hd["n_valid"], hd["n_undefined"]) == (n_empty, N_IMAGES - n_empty)
    csv_hd = [r["hd95"] for r in read_rows(tmp_path / "out" / "per_image.csv")]
    assert csv_hd.count("nan") == N_IMAGES - n_empty


def test_resize_in_and_out_scores_at_native_resolution(data, tmp_path) -> None:
    """70x50 images (not multiples of 32): the network sees 64x64, metrics are computed on the 70x50 masks."""
    gt = ground_truth(data["odd"])
    for size in (64, "native"):
        res = evaluate(data["fg"], data["odd"], tmp_path / str(size), image_size=size, n_overlays=1)
        assert res.policy.mode == ("resize" if size == 64 else "native")
        for row in res.per_image:
            g = int(gt[row["stem"]].sum())
            assert (row["height"], row["width"]) == (50, 70)
            assert row["tp"] + row["fp"] + row["fn"] + row["tn"] == 70 * 50
            assert row["dice"] == pytest.approx(2 * g / (g + 70 * 50), abs=1e-12)
        overlay = next((tmp_path / str(size) / "overlays").iterdir())
        assert Image.open(overlay).height == 50

    # Scoring at the network size instead (masks resized with nearest neighbour) is opt-in.
    res = evaluate(data["fg"], data["odd"], tmp_path / "net", image_size=64, native_resolution=False, n_overlays=1)
    assert {r["tp"] + r["fp"] + r["fn"] + r["tn"] for r in res.per_image} == {64 * 64}
    assert res.report["image_size_policy"]["metrics_resolution"] == "network"


def test_training_size_comes_from_the_checkpoint_config(data, tmp_path) -> None:
    ckpt = make_ckpt(tmp_path / "cfg.pt", config={"data": {"image_size": 32}})
    res = evaluate(ckpt, data["odd"], tmp_path / "out", n_overlays=0, hd95=False)
    assert res.report["image_size_policy"]["mode"] == "resize"
    assert res.report["image_size_policy"]["image_size"] == 32
    assert res.report["image_size_policy"]["source"] == "checkpoint config"
    assert "hd95" not in res.report["metrics"]
    assert resolve_image_policy(64, {"config": {"data": {"image_size": 32}}}).image_size == 64  # argument wins
    with pytest.raises(ValueError, match="image_size must be a positive int"):
        resolve_image_policy(0, {})


@pytest.mark.parametrize("size", [64, None])
def test_network_input_is_normalised_like_training(data, tmp_path, size) -> None:
    seen: list[torch.Tensor] = []

    def grab(module, args):
        if isinstance(module, lgmsnet.LGMSNet):
            seen.append(args[0].detach().clone())

    handle = torch.nn.modules.module.register_module_forward_pre_hook(grab)
    try:
        evaluate(data["rand"], data["odd"], tmp_path / "out", image_size=size or "native", batch_size=1,
                 n_overlays=0, hd95=False)
    finally:
        handle.remove()
    first = sorted((data["odd"] / "images").iterdir())[0]
    image = read_image(first)
    if size:
        expected = build_transforms("none", size, train=False)(image=image)["image"]
    else:  # native: normalised at 50x70, replicate-padded to 64x96 by model.predict
        expected = np.pad(normalize_image(image, 3), ((0, 14), (0, 26), (0, 0)), mode="edge")
    got = seen[0][0].permute(1, 2, 0).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_grey_checkpoint_on_rgb_data_converts_the_images(data, tmp_path) -> None:
    ckpt = make_ckpt(tmp_path / "grey.pt", bias=1e4, in_channels=1)
    res = evaluate(ckpt, data["src"], tmp_path / "out", n_overlays=1)
    assert res.report["in_channels"] == 1
    gt = ground_truth(data["src"])
    for row in res.per_image:
        g = int(gt[row["stem"]].sum())
        assert row["dice"] == pytest.approx(2 * g / (g + 64 * 64))


def test_split_from_manifest(data, tmp_path) -> None:
    manifest = make_splits(data["src"], seed=0, ratios=(0.5, 0.17, 0.33), hash_threshold=-1)
    path = write_manifest(manifest, tmp_path / "split.json")
    res = evaluate(data["rand"], data["src"], tmp_path / "out", split="test", manifest=path, n_overlays=0)
    assert sorted(r["stem"] for r in res.per_image) == manifest.test
    assert res.report["dataset"]["split"] == "test"
    with pytest.raises(ValueError, match="unknown split 'tset'.*split.json"):
        evaluate(data["rand"], data["src"], tmp_path / "x", split="tset", manifest=path)
    with pytest.raises(ValueError, match="without a manifest"):
        evaluate(data["rand"], data["src"], tmp_path / "x", split="test")
    with pytest.raises(DatasetError, match="nope.json does not exist"):
        evaluate(data["rand"], data["src"], tmp_path / "x", split="test", manifest=tmp_path / "nope.json")
    with pytest.raises(DatasetError, match="not in dataset"):
        evaluate(data["rand"], data["src"], tmp_path / "x", stems=["ghost"])


def test_bad_inputs_name_the_file(data, tmp_path) -> None:
    with pytest.raises(CheckpointError, match="missing.pt does not exist"):
        evaluate(tmp_path / "missing.pt", data["src"], tmp_path / "out")
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(data["rand"].read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="trunc.pt.*truncated"):
        evaluate(truncated, data["src"], tmp_path / "out")

    broken = shutil.copytree(data["src"], tmp_path / "broken")
    victim = sorted((broken / "images").iterdir())[2]
    victim.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DatasetError, match=victim.name):
        evaluate(data["rand"], broken, tmp_path / "out")
    assert not (tmp_path / "out" / "metrics.json").exists()

    mismatched = shutil.copytree(data["src"], tmp_path / "mismatch")
    mask = sorted((mismatched / "masks").iterdir())[0]
    Image.open(mask).resize((32, 32)).save(mask)
    with pytest.raises(DatasetError, match=f"its mask .*{mask.name}"):
        evaluate(data["rand"], mismatched, tmp_path / "out")
    with pytest.raises(ValueError, match="CUDA is not available|batch_size"):
        evaluate(data["rand"], data["src"], tmp_path / "out", batch_size=0)


def test_zero_shot_many_targets_and_same_data_warning(data, tmp_path, caplog) -> None:
    ckpt = make_ckpt(tmp_path / "trained.pt", data={"fingerprint": dataset_fingerprint(data["src"])})
    out = tmp_path / "zs"
    with caplog.at_level(logging.WARNING, logger="lgmsnet.evaluation"):
        summary = zero_shot(ckpt, {"kvasir-like": data["src"], "cvc-like": data["tgt"]}, out, image_size=64,
                            n_overlays=1)
    assert "NOT ZERO-SHOT" in caplog.text and "kvasir-like" in caplog.text
    by_name = {t["name"]: t for t in summary["targets"]}
    assert by_name["kvasir-like"]["zero_shot"] is False and by_name["cvc-like"]["zero_shot"] is True
    assert strict_json(out / "summary.json") == summary
    for name in by_name:
        assert (out / name / "metrics.json").is_file() and (out / name / "per_image.csv").is_file()
        assert by_name[name]["n_images"] == N_IMAGES
    table = (out / "summary.md").read_text()
    assert "| dataset | n | Dice | IoU | sensitivity | precision | HD95 (px) |" in table
    assert "| cvc-like | 6 |" in table and "NOT zero-shot" in table
    assert f"{by_name['cvc-like']['metrics']['dice']['mean']:.4f} ± " in table

    summary = zero_shot(data["rand"], [data["tgt"]], tmp_path / "list", n_overlays=0, hd95=False)
    assert [t["name"] for t in summary["targets"]] == ["tgt"] and summary["targets"][0]["zero_shot"]
    assert "| tgt | 6 |" in (tmp_path / "list" / "summary.md").read_text()
    with pytest.raises(ValueError, match="share the name"):
        zero_shot(data["rand"], [data["src"], tmp_path / "other" / "src"], tmp_path / "dup")
    with pytest.raises(DatasetError, match="missing"):  # every target is checked before any evaluation
        zero_shot(data["rand"], {"a": data["src"], "b": tmp_path / "missing"}, tmp_path / "bad")
    assert not (tmp_path / "bad" / "a").exists()


def test_predict_writes_native_size_binary_masks(data, tmp_path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(sorted((data["src"] / "images").iterdir())[0], images / "a.png")
    Image.open(sorted((data["odd"] / "images").iterdir())[1]).save(images / "b.jpg")
    (images / "notes.txt").write_text("ignored")
    for ckpt, value in ((data["fg"], 255), (data["bg"], 0)):
        paths = predict(ckpt, images, tmp_path / "pred", image_size=64)  # a rerun replaces the previous output
        assert [p.name for p in paths] == ["a.png", "b.png"]
        sizes = []
        for p in paths:
            mask = np.asarray(Image.open(p))
            assert mask.dtype == np.uint8 and mask.ndim == 2 and set(np.unique(mask)) == {value}
            sizes.append(mask.shape)
        assert sizes == [(64, 64), (50, 70)]
    paths = predict(data["rand"], images, tmp_path / "rand", image_size="native")
    assert set(np.unique(np.asarray(Image.open(paths[1])))) <= {0, 255}


def test_predict_is_all_or_nothing(data, tmp_path) -> None:
    images = shutil.copytree(data["src"] / "images", tmp_path / "images")
    bad = sorted(images.iterdir())[-1]
    bad.write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=bad.name):
        predict(data["fg"], images, tmp_path / "pred")
    assert not (tmp_path / "pred").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["images"]  # no temporary folder left behind

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    bad.unlink()
    with pytest.raises(DatasetError, match="not a previous prediction"):
        predict(data["fg"], images, foreign)
    assert (foreign / "keep.txt").read_text() == "mine"
    with pytest.raises(DatasetError, match="no images"):
        predict(data["fg"], tmp_path / "foreign", tmp_path / "p2")
