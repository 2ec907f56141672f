"""The LGMSNet network: size, cost, parity with the authors' implementation, contracts."""

from __future__ import annotations

import ast

import pytest
import torch

import lgmsnet
from lgmsnet.inference import fold_batchnorm, optimize_for_inference
from lgmsnet.layers import HeteroKernelBlock
from lgmsnet.models.convert import convert_official_state_dict


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _read_key_file(path) -> dict[str, tuple[tuple[int, ...], str]]:
    out = {}
    for line in path.read_text().splitlines():
        key, shape, dtype = line.split("\t")
        out[key] = (tuple(ast.literal_eval(shape)), dtype)
    return out


def test_default_2d_parameter_count() -> None:
    m = lgmsnet.create_model()
    assert _n_params(m) == 2_321_393
    assert all(p.requires_grad for p in m.parameters())
    assert sum(b.numel() for b in m.buffers()) == 6_543  # BatchNorm running stats + counters


def test_default_3d_parameter_count() -> None:
    m = lgmsnet.create_model("lgmsnet_3d", in_channels=1, num_classes=14)
    assert _n_params(m) == 6_193_742


def test_macs_match_reference_fvcore_convention() -> None:
    fvcore = pytest.importorskip("fvcore.nn", reason="fvcore is a dev dependency: pip install -e '.[dev]'")

    def sdpa_macs(inputs, outputs):  # q·kᵀ and attn·v, as fvcore counts the reference's two matmuls
        q = inputs[0].type().sizes()
        *batch, n, d = q
        return 2 * int(torch.tensor(batch).prod()) * n * n * d

    for impl in ("reference", "sdpa"):
        m = lgmsnet.create_model(attention_impl=impl).eval()
        flops = fvcore.FlopCountAnalysis(m, torch.randn(1, 3, 256, 256))
        flops.set_op_handle("aten::scaled_dot_product_attention", sdpa_macs)
        flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        assert flops.total() == pytest.approx(5.076e9, rel=0.01), impl


def test_official_weights_reproduce_reference_logits(reference_dir) -> None:
    sd = torch.load(reference_dir / "lgmsnet_official_state_dict.pt", weights_only=True)
    io = torch.load(reference_dir / "lgmsnet_official_io.pt", weights_only=True)
    converted = convert_official_state_dict(sd)
    for impl in ("sdpa", "reference"):
        m = lgmsnet.create_model(attention_impl=impl)
        m.load_state_dict(converted, strict=True)
        with torch.no_grad():
            out = m.eval()(io["input"])
        assert out.shape == io["logits"].shape
        assert (out - io["logits"]).abs().max().item() < 1e-5, impl


def test_official_key_list_covers_every_2d_key(reference_dir) -> None:
    keys = _read_key_file(reference_dir / "lgmsnet_official_state_dict_keys.txt")
    assert len(keys) == 372
    sd = {k: torch.empty(shape, dtype=getattr(torch, dt.split(".")[1])) for k, (shape, dt) in keys.items()}
    converted = convert_official_state_dict(sd)
    ours = lgmsnet.create_model().state_dict()
    assert set(converted) == set(ours)
    assert {k: tuple(v.shape) for k, v in converted.items()} == {k: tuple(v.shape) for k, v in ours.items()}


def test_3d_state_dict_shapes_match_reference_key_list(reference_dir) -> None:
    keys = _read_key_file(reference_dir / "lgmsnet3d_official_state_dict_keys.txt")
    assert len(keys) == 177
    sd = {k: torch.zeros(shape, dtype=getattr(torch, dt.split(".")[1])) for k, (shape, dt) in keys.items()}
    converted = convert_official_state_dict(sd)
    m = lgmsnet.create_model("lgmsnet_3d", in_channels=1, num_classes=14)
    ours = m.state_dict()
    assert set(converted) == set(ours), set(converted) ^ set(ours)
    mismatched = {k for k in ours if tuple(ours[k].shape) != tuple(converted[k].shape)}
    assert not mismatched
    m.load_state_dict(converted, strict=True)


def test_converter_rejects_foreign_keys() -> None:
    with pytest.raises(ValueError, match="not LGMSNet reference keys: encoder.layer1.weight"):
        convert_official_state_dict({"encoder.layer1.weight": torch.zeros(1), "stem.conv.0.weight": torch.zeros(1)})


def test_converter_strips_dataparallel_prefix() -> None:
    out = convert_official_state_dict({"module.Conv_1x1.bias": torch.zeros(1)})
    assert list(out) == ["head.bias"]


@pytest.mark.parametrize("name,shape", [("lgmsnet_tiny", (2, 3, 64, 96)), ("lgmsnet", (1, 3, 64, 64))])
def test_attention_implementations_agree(name: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    a = lgmsnet.create_model(name, attention_impl="sdpa").eval()
    b = lgmsnet.create_model(name, attention_impl="reference").eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(shape)
    with torch.no_grad():
        assert (a(x) - b(x)).abs().max().item() < 1e-5


@pytest.mark.parametrize(
    "name,kwargs,shape",
    [
        ("lgmsnet_tiny", {"in_channels": 3, "num_classes": 1}, (2, 3, 64, 64)),
        ("lgmsnet_tiny", {"in_channels": 1, "num_classes": 4}, (2, 1, 32, 64)),
        ("lgmsnet_tiny_3d", {"in_channels": 1, "num_classes": 3}, (1, 1, 32, 32, 32)),
    ],
)
def test_every_parameter_receives_a_gradient(name, kwargs, shape) -> None:
    torch.manual_seed(0)
    m = lgmsnet.create_model(name, **kwargs).train()
    out = m(torch.randn(shape))
    assert out.shape == (shape[0], kwargs["num_classes"], *shape[2:])
    out.square().mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    zero = [n for n, p in m.named_parameters() if p.grad is not None and p.grad.abs().sum() == 0]
    assert not missing, missing
    assert not zero, zero


@pytest.mark.parametrize("hw", [(250, 256), (256, 100), (33, 64)])
def test_size_not_multiple_of_32_is_rejected(hw) -> None:
    m = lgmsnet.create_model("lgmsnet_tiny")
    with pytest.raises(ValueError, match=r"not a multiple of 32; pad .* multiple of 32"):
        m(torch.randn(1, 3, *hw))


@pytest.mark.parametrize(
    "bad,match",
    [
        (torch.randn(1, 1, 64, 64), "expected 3 input channel"),
        (torch.randn(3, 64, 64), "expected a 4-D input"),
    ],
)
def test_bad_input_shape_is_rejected(bad, match) -> None:
    with pytest.raises(ValueError, match=match):
        lgmsnet.create_model("lgmsnet_tiny")(bad)


def test_predict_pads_and_crops() -> None:
    m = lgmsnet.create_model("lgmsnet_tiny").eval()
    out = m.predict(torch.randn(1, 3, 50, 70))
    assert out.shape == (1, 1, 50, 70)


def test_unknown_model_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'lgmsnett'; valid names: .*lgmsnet, lgmsnet_3d"):
        lgmsnet.create_model("lgmsnett")
    assert {"lgmsnet", "lgmsnet_3d", "lgmsnet_tiny", "lgmsnet_tiny_3d"} <= set(lgmsnet.list_models())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"attention_impl": "flash"}, "attention_impl must be one of"),
        ({"num_classes": 0}, "num_classes must be >= 1"),
        ({"not_an_arg": 1}, "bad argument for model"),
        ({"dims": (8, 8, 16, 16)}, "dims must have 5 entries"),
    ],
)
def test_bad_constructor_arguments(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        lgmsnet.create_model("lgmsnet_tiny", **kwargs)


def test_channels_last_and_autocast() -> None:
    torch.manual_seed(0)
    m = lgmsnet.create_model("lgmsnet_tiny").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = m(x)
        cl = m.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            amp = m(x)
    assert (cl - ref).abs().max() < 1e-5
    assert amp.shape == ref.shape and torch.isfinite(amp).all()
    assert (amp.float() - ref).abs().max() < 0.25  # bf16 has ~3 significant digits


def test_fold_batchnorm_keeps_outputs(reference_dir) -> None:
    sd = convert_official_state_dict(
        torch.load(reference_dir / "lgmsnet_official_state_dict.pt", weights_only=True)
    )
    io = torch.load(reference_dir / "lgmsnet_official_io.pt", weights_only=True)
    m = lgmsnet.create_model()
    m.load_state_dict(sd)
    folded = optimize_for_inference(m)
    n_bn = sum(isinstance(x, torch.nn.BatchNorm2d) for x in folded.modules())
    assert n_bn < sum(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules()) / 4
    with torch.no_grad():
        out = folded(io["input"].contiguous(memory_format=torch.channels_last))
    assert (out - io["logits"]).abs().max().item() < 1e-5
    assert all(b.merged is not None for b in folded.modules() if isinstance(b, HeteroKernelBlock))
    # the source model is untouched
    assert any(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())


def test_fold_batchnorm_3d_tiny() -> None:
    torch.manual_seed(0)
    m = lgmsnet.create_model("lgmsnet_tiny_3d", in_channels=1, num_classes=2)
    m.train()
    m(torch.randn(2, 1, 32, 32, 32))  # move the running statistics off their defaults
    m.eval()
    x = torch.randn(1, 1, 32, 32, 32)
    with torch.no_grad():
        assert (fold_batchnorm(m)(x) - m(x)).abs().max() < 1e-4
        assert (optimize_for_inference(m)(x) - m(x)).abs().max() < 1e-4
