"""The data, evaluate, zero-shot and predict commands end to end through ``lgmsnet.cli.main`` (exit codes, output).

Every bad-input case must exit 1 with a message on stderr that names the file at fault.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lgmsnet
from lgmsnet.checkpoint import save_checkpoint
from lgmsnet.cli import build_parser, main
from lgmsnet.data import dataset_fingerprint, load_manifest

N_IMAGES = 6


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> dict[str, Path]:
    """A workspace with a source and a target synthetic dataset (made through the CLI) and a tiny checkpoint."""
    root = tmp_path_factory.mktemp("cli")
    for domain in ("source", "target"):
        code = main(["data", "synth", "--out", str(root / domain), "--n", str(N_IMAGES), "--domain", domain,
                     "--seed", "3", "--size", "64"])
        assert code == 0
    torch.manual_seed(0)
    model = lgmsnet.create_model("lgmsnet_tiny")
    ckpt = save_checkpoint(root / "model.pt", model, data={"fingerprint": dataset_fingerprint(root / "source")})
    return {"root": root, "source": root / "source", "target": root / "target", "ckpt": ckpt}


def broken_copy(src: Path, dst: Path, *, corrupt_image: bool = False, drop_mask: bool = False) -> tuple[Path, Path]:
    """Copy a dataset and break one pair (corrupt its image or delete its mask); returns (dataset, the image)."""
    data = shutil.copytree(src, dst)
    image = sorted((data / "images").iterdir())[1]
    if corrupt_image:
        image.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    if drop_mask:
        (data / "masks" / image.name).unlink()
    return data, image


def test_data_synth(ws, capsys, tmp_path) -> None:
    assert len(list((ws["source"] / "images").iterdir())) == N_IMAGES
    assert (ws["source"] / "SYNTHETIC_README.txt").is_file()
    assert main(["data", "synth", "--out", str(tmp_path / "s"), "--n", "2", "--size", "32"]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    assert main(["data", "synth", "--out", str(ws["source"]), "--n", "2"]) == 1  # exists, not empty
    err = capsys.readouterr().err
    assert err.startswith("lgmsnet data synth: error:") and str(ws["source"]) in err
    with pytest.raises(SystemExit) as exc:
        main(["data", "synth", "--out", str(tmp_path / "x"), "--n", "2", "--domain", "mars"])
    assert exc.value.code == 2


def test_data_split(ws, capsys, tmp_path) -> None:
    manifest_path = tmp_path / "m" / "split.json"
    argv = ["data", "split", "--data", str(ws["source"]), "--out", str(manifest_path), "--seed", "1",
            "--ratios", "0.5,0.17,0.33"]
    assert main(argv) == 0
    assert "train/val/test" in capsys.readouterr().out
    manifest = load_manifest(manifest_path)
    assert len(manifest.train) + len(manifest.val) + len(manifest.test) == N_IMAGES
    assert manifest.fingerprint == dataset_fingerprint(ws["source"])
    assert main(argv) == 0  # rerun reuses the cached hashes
    assert load_manifest(manifest_path).to_dict() == manifest.to_dict()
    assert main(argv[:-1] + ["0.5,0.5,0.5"]) == 1
    assert "summing to 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["data", "split", "--data", str(ws["source"]), "--out", str(manifest_path), "--ratios", "a,b"])
    assert exc.value.code == 2


def test_data_validate(ws, capsys, tmp_path) -> None:
    assert main(["data", "validate", "--data", str(ws["source"])]) == 0
    out = capsys.readouterr().out
    assert f"{N_IMAGES} pair(s), 0 error(s)" in out and "64x64" in out

    data, bad = broken_copy(ws["source"], tmp_path / "corrupt", corrupt_image=True)
    assert main(["data", "validate", "--data", str(data)]) == 1
    captured = capsys.readouterr()
    assert bad.name in captured.out and "lgmsnet data validate: error: 1 problem(s)" in captured.err

    data, bad = broken_copy(ws["source"], tmp_path / "nomask", drop_mask=True)
    assert main(["data", "validate", "--data", str(data), "--json"]) == 1
    assert bad.name in capsys.readouterr().err

    assert main(["data", "validate", "--data", str(ws["target"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_pairs"] == N_IMAGES


def test_data_cache(ws, capsys, tmp_path) -> None:
    assert main(["data", "cache", "--data", str(ws["source"]), "--out", str(tmp_path / "c"), "--size", "32"]) == 0
    assert f"{N_IMAGES} pair(s) at 32x32" in capsys.readouterr().out
    first = sorted((tmp_path / "c" / "images").iterdir())[0]
    assert Image.open(first).size == (32, 32)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    assert main(["data", "cache", "--data", str(ws["source"]), "--out", str(tmp_path / "other"), "--size", "32"]) == 1
    assert "other" in capsys.readouterr().err


def test_evaluate_cli(ws, capsys, tmp_path) -> None:
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(ws["ckpt"]), "--data", str(ws["source"]), "--out", str(out),
                 "--image-size", "64", "--overlays", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"evaluated {N_IMAGES} image(s) (64px resize in/out): dice " in printed and "hd95" in printed
    report = json.loads((out / "metrics.json").read_text())
    assert report["image_size_policy"]["image_size"] == 64 and report["n_images"] == N_IMAGES
    assert len((out / "per_image.csv").read_text().splitlines()) == N_IMAGES + 1
    assert len(list((out / "overlays").iterdir())) == 2

    manifest = tmp_path / "split.json"
    assert main(["data", "split", "--data", str(ws["source"]), "--out", str(manifest),
                 "--ratios", "0.5,0.17,0.33"]) == 0
    assert main(["evaluate", "--checkpoint", str(ws["ckpt"]), "--data", str(ws["source"]), "--out", str(out / "t"),
                 "--split", "test", "--manifest", str(manifest), "--no-hd95", "--image-size", "native"]) == 0
    report = json.loads((out / "t" / "metrics.json").read_text())
    assert report["n_images"] == len(load_manifest(manifest).test) and "hd95" not in report["metrics"]
    assert report["image_size_policy"]["mode"] == "native"


def run_err(argv: list[str], capsys) -> str:
    assert main(argv) == 1
    captured = capsys.readouterr()
    return captured.err


def test_evaluate_cli_bad_inputs(ws, capsys, tmp_path) -> None:
    ckpt, src = str(ws["ckpt"]), str(ws["source"])
    out = str(tmp_path / "out")

    data, bad = broken_copy(ws["source"], tmp_path / "corrupt", corrupt_image=True)
    err = run_err(["evaluate", "--checkpoint", ckpt, "--data", str(data), "--out", out], capsys)
    assert err.startswith("lgmsnet evaluate: error:") and str(bad) in err

    data, bad = broken_copy(ws["source"], tmp_path / "nomask", drop_mask=True)
    err = run_err(["evaluate", "--checkpoint", ckpt, "--data", str(data), "--out", out], capsys)
    assert bad.name in err and "no mask" in err

    err = run_err(["evaluate", "--checkpoint", str(tmp_path / "nope.pt"), "--data", src, "--out", out], capsys)
    assert "nope.pt does not exist" in err

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(ws["ckpt"].read_bytes()[:1500])
    err = run_err(["evaluate", "--checkpoint", str(truncated), "--data", src, "--out", out], capsys)
    assert "truncated.pt" in err and "truncated" in err

    manifest = tmp_path / "split.json"
    assert main(["data", "split", "--data", src, "--out", str(manifest)]) == 0
    err = run_err(["evaluate", "--checkpoint", ckpt, "--data", src, "--out", out, "--split", "holdout",
                   "--manifest", str(manifest)], capsys)
    assert "unknown split 'holdout'" in err and str(manifest) in err and "train, val, test" in err
    err = run_err(["evaluate", "--checkpoint", ckpt, "--data", src, "--out", out, "--split", "test"], capsys)
    assert "--manifest" in err
    err = run_err(["evaluate", "--checkpoint", ckpt, "--data", str(tmp_path / "ghost"), "--out", out], capsys)
    assert "ghost" in err
    assert not (tmp_path / "out" / "metrics.json").exists()
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--checkpoint", ckpt, "--data", src, "--out", out, "--image-size", "0"])
    assert exc.value.code == 2


def test_zero_shot_cli(ws, capsys, tmp_path) -> None:
    out = tmp_path / "zs"
    assert main(["zero-shot", "--checkpoint", str(ws["ckpt"]), "--target", f"kvasir={ws['source']}",
                 "--target", f"cvc={ws['target']}", "--out", str(out), "--image-size", "64", "--overlays", "0"]) == 0
    captured = capsys.readouterr()
    assert "| kvasir | 6 |" in captured.out and "| cvc | 6 |" in captured.out
    assert "NOT zero-shot" in captured.out and "kvasir" in captured.err and "NOT zero-shot" in captured.err
    summary = json.loads((out / "summary.json").read_text())
    assert [(t["name"], t["zero_shot"]) for t in summary["targets"]] == [("kvasir", False), ("cvc", True)]
    assert (out / "cvc" / "metrics.json").is_file() and (out / "summary.md").is_file()

    err = run_err(["zero-shot", "--checkpoint", str(ws["ckpt"]), "--target", f"a={ws['target']}",
                   "--target", f"a={ws['source']}", "--out", str(tmp_path / "dup")], capsys)
    assert "repeated: a" in err
    err = run_err(["zero-shot", "--checkpoint", str(ws["ckpt"]), "--target", f"x={tmp_path / 'missing'}",
                   "--out", str(tmp_path / "m")], capsys)
    assert "missing" in err


def test_predict_cli(ws, capsys, tmp_path) -> None:
    images = shutil.copytree(ws["target"] / "images", tmp_path / "images")
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(ws["ckpt"]), "--images", str(images), "--out", str(out),
                 "--image-size", "64"]) == 0
    assert f"wrote {N_IMAGES} mask(s)" in capsys.readouterr().out
    masks = sorted(p for p in out.iterdir() if p.suffix == ".png")
    assert [p.stem for p in masks] == sorted(p.stem for p in images.iterdir())
    for p in masks:
        mask = np.asarray(Image.open(p))
        assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 255}

    bad = sorted(images.iterdir())[0]
    bad.write_bytes(b"not an image")
    err = run_err(["predict", "--checkpoint", str(ws["ckpt"]), "--images", str(images), "--out",
                   str(tmp_path / "p2")], capsys)
    assert str(bad) in err
    assert not (tmp_path / "p2").exists()


def test_parser_keeps_the_existing_commands() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"models", "convert-official", "export", "data", "evaluate", "zero-shot", "predict"} <= set(sub.choices)
