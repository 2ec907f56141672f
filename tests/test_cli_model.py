"""Checkpoint format, official-weight conversion, ONNX export and import isolation, through the user's entry points."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

import lgmsnet
from lgmsnet.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from lgmsnet.cli import main

from .conftest import REPO


def test_checkpoint_roundtrip_rebuilds_the_model(tmp_path) -> None:
    torch.manual_seed(0)
    m = lgmsnet.create_model("lgmsnet_tiny", in_channels=1, num_classes=2, attention_impl="reference").eval()
    path = save_checkpoint(tmp_path / "a" / "m.pt", m, epoch=3, config={"lr": 0.01})
    ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 3 and ckpt["config"] == {"lr": 0.01}
    m2 = model_from_checkpoint(path).eval()
    assert m2.model_kwargs == m.model_kwargs
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))
    assert not list(tmp_path.joinpath("a").glob("*.tmp"))


@pytest.mark.parametrize(
    "content,match",
    [
        (b"", "cannot read checkpoint"),
        (b"PK\x03\x04 truncated zip", "cannot read checkpoint"),
    ],
)
def test_corrupt_checkpoint_is_named(tmp_path, content, match) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError, match=match) as err:
        load_checkpoint(bad)
    assert "bad.pt" in str(err.value)


def test_truncated_checkpoint_is_rejected(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", lgmsnet.create_model("lgmsnet_tiny"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        load_checkpoint(path)


def test_bare_state_dict_gets_a_conversion_hint(tmp_path) -> None:
    torch.save({"stem.conv.0.weight": torch.zeros(1)}, tmp_path / "sd.pt")
    with pytest.raises(CheckpointError, match="convert-official"):
        load_checkpoint(tmp_path / "sd.pt")


def test_pickled_objects_are_refused(tmp_path) -> None:
    torch.save({"format": "lgmsnet-checkpoint", "obj": object()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(tmp_path / "evil.pt")


def test_convert_official_cli(tmp_path, reference_dir, capsys) -> None:
    out = tmp_path / "converted.pt"
    assert main(["convert-official", str(reference_dir / "lgmsnet_official_state_dict.pt"), str(out)]) == 0
    assert "model lgmsnet" in capsys.readouterr().out
    model = model_from_checkpoint(out).eval()
    io = torch.load(reference_dir / "lgmsnet_official_io.pt", weights_only=True)
    with torch.no_grad():
        assert (model(io["input"]) - io["logits"]).abs().max() < 1e-5


def test_convert_official_cli_rejects_foreign_weights(tmp_path, capsys) -> None:
    torch.save({"layer.weight": torch.zeros(2)}, tmp_path / "other.pt")
    assert main(["convert-official", str(tmp_path / "other.pt"), str(tmp_path / "out.pt")]) == 1
    assert "not LGMSNet reference keys: layer.weight" in capsys.readouterr().err
    assert not (tmp_path / "out.pt").exists()


def test_cli_missing_checkpoint_exits_nonzero(tmp_path, capsys) -> None:
    assert main(["export", "--checkpoint", str(tmp_path / "nope.pt")]) == 1
    assert "nope.pt does not exist" in capsys.readouterr().err


def test_onnx_export_parity_via_cli(tmp_path, capsys) -> None:
    pytest.importorskip("onnxruntime", reason="export extra: pip install -e '.[export]'")
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "tiny.pt", lgmsnet.create_model("lgmsnet_tiny", in_channels=1, num_classes=2))
    out = tmp_path / "tiny.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(out), "--image-size", "64"]) == 0
    assert out.is_file()
    assert "max abs diff" in capsys.readouterr().out

    import onnxruntime as ort

    model = model_from_checkpoint(ckpt).eval()
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 1, 64, 64)  # a batch size that was not the export example's
    (got,) = sess.run(None, {"image": x.numpy()})
    with torch.no_grad():
        assert abs(got - model(x).numpy()).max() < 1e-4


BLOCKER = textwrap.dedent(
    """
    import importlib.abc, pkgutil, sys
    BLOCKED = ("kfp", "mlflow", "dvc", "great_expectations", "boto3", "components", "pipelines")
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked MLOps module {name}")
    sys.meta_path.insert(0, Block())
    import lgmsnet
    for info in pkgutil.walk_packages(lgmsnet.__path__, "lgmsnet."):
        __import__(info.name)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not loaded, loaded
    m = lgmsnet.create_model("lgmsnet_tiny")
    print("ok", len(list(pkgutil.walk_packages(lgmsnet.__path__))))
    """
)


def test_library_imports_without_mlops_packages() -> None:
    res = subprocess.run([sys.executable, "-c", BLOCKER], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("ok")


def test_onnx_parity_is_relative_to_the_logit_scale(tmp_path) -> None:
    """Trained networks emit logits of tens; float32 rounding then exceeds 1e-4 absolute, not relative."""
    pytest.importorskip("onnxruntime", reason="export extra: pip install -e '.[export]'")
    from lgmsnet.export import export_onnx

    torch.manual_seed(0)
    m = lgmsnet.create_model("lgmsnet_tiny")
    with torch.no_grad():
        m.head.weight.mul_(200.0)
        m.head.bias.fill_(40.0)
    res = export_onnx(m, tmp_path / "big.onnx", 64)
    assert res.max_abs_diff is not None and res.max_abs_diff < 1e-4
