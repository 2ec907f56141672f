"""CPU speed benchmark: LGMSNet (reference attention vs SDPA, and inference rewrites) against MONAI's BasicUNet.

Run ``make bench`` (or ``python bench/speed.py --help``). Every candidate is measured in the same process,
interleaved round-robin so machine noise hits all of them alike; medians with min–max are reported, as a table and
as one JSON line (``BENCH_JSON {...}``) with the ratios against the baseline measured in the same run.

Inference: batch 1, 3×256×256, ``torch.inference_mode``. Training: batch 8, 3×256×256, forward + backward +
SGD step with the reference loss (0.5·BCE + soft Dice).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import lgmsnet  # noqa: E402
from lgmsnet.inference import fold_batchnorm, optimize_for_inference  # noqa: E402

Runner = Callable[[], object]


def _loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = logits.sigmoid().flatten(1)
    g = target.flatten(1)
    dice = (2 * (p * g).sum(1) + 1e-5) / (p.sum(1) + g.sum(1) + 1e-5)
    return 0.5 * F.binary_cross_entropy_with_logits(logits, target) + (1 - dice.mean())


def _basic_unet() -> torch.nn.Module:
    from monai.networks.nets import BasicUNet

    return BasicUNet(spatial_dims=2, in_channels=3, out_channels=1)


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def inference_candidates(args: argparse.Namespace, tmp: Path) -> dict[str, tuple[Runner, str]]:
    x = torch.randn(1, 3, args.size, args.size)
    xcl = x.contiguous(memory_format=torch.channels_last)
    torch.manual_seed(0)
    ref = lgmsnet.create_model(attention_impl="reference").eval()
    sdpa = lgmsnet.create_model(attention_impl="sdpa").eval()
    sdpa.load_state_dict(ref.state_dict())
    cl = lgmsnet.create_model().eval().to(memory_format=torch.channels_last)
    cl.load_state_dict(ref.state_dict())
    fold = optimize_for_inference(sdpa, merge_kernels=False)
    merged = optimize_for_inference(sdpa)
    unet = _basic_unet().eval()
    unet_cl = _basic_unet().eval().to(memory_format=torch.channels_last)
    unet_cl.load_state_dict(unet.state_dict())

    with torch.inference_mode():
        expect = ref(x)
        for name, m, xi in (("sdpa", sdpa, x), ("cl", cl, xcl), ("fold", fold, xcl), ("merged", merged, xcl)):
            diff = (m(xi) - expect).abs().max().item()
            if diff > 1e-4:
                raise SystemExit(f"candidate {name} changed the outputs (max abs diff {diff:.3g})")

    c: dict[str, tuple[Runner, str]] = {
        "lgmsnet reference-attn": (lambda: ref(x), "eager, explicit matmul-softmax (as the authors' code)"),
        "lgmsnet sdpa": (lambda: sdpa(x), "eager, scaled_dot_product_attention"),
        "lgmsnet sdpa+channels_last": (lambda: cl(xcl), "+ channels_last"),
        "lgmsnet sdpa+cl+bnfold": (lambda: fold(xcl), "+ BatchNorm folded"),
        "lgmsnet sdpa+cl+bnfold+merged": (lambda: merged(xcl), "+ 3/5/7/9 depthwise merged (optimize_for_inference)"),
        "basicunet": (lambda: unet(x), "MONAI BasicUNet, eager"),
        "basicunet channels_last": (lambda: unet_cl(xcl), "MONAI BasicUNet, channels_last"),
    }
    if args.compile:
        comp = torch.compile(merged, mode="max-autotune-no-cudagraphs" if args.autotune else None, dynamic=False)
        t0 = time.perf_counter()
        with torch.inference_mode():
            comp(xcl)
            diff = (comp(xcl) - expect).abs().max().item()
        print(f"# torch.compile warm-up {time.perf_counter() - t0:.1f} s, max abs diff {diff:.2e}", flush=True)
        c["lgmsnet optimized+compile"] = (lambda: comp(xcl), "+ torch.compile (inductor)")
    if args.onnx:
        try:
            import onnxruntime as ort

            from lgmsnet.export import export_onnx
        except ImportError:
            print("# onnxruntime not installed: skipping ONNX Runtime rows", flush=True)
        else:
            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            so.inter_op_num_threads = 1
            export_onnx(sdpa, tmp / "lgmsnet.onnx", args.size)
            sess = ort.InferenceSession(str(tmp / "lgmsnet.onnx"), so, providers=["CPUExecutionProvider"])
            xn = x.numpy()
            diff = abs(sess.run(None, {"image": xn})[0] - expect.numpy()).max()
            print(f"# ONNX Runtime max abs diff {diff:.2e}", flush=True)
            c["lgmsnet onnxruntime"] = (lambda: sess.run(None, {"image": xn}), "ONNX Runtime (BN folded, opset 18)")
            torch.onnx.export(
                unet, (x,), str(tmp / "unet.onnx"), input_names=["image"], opset_version=18, dynamo=True
            )
            usess = ort.InferenceSession(str(tmp / "unet.onnx"), so, providers=["CPUExecutionProvider"])
            c["basicunet onnxruntime"] = (lambda: usess.run(None, {"image": xn}), "MONAI BasicUNet, ONNX Runtime")
    return c


def training_candidates(args: argparse.Namespace) -> dict[str, tuple[Runner, str]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=g)
    y = (torch.rand(args.batch, 1, args.size, args.size, generator=g) > 0.8).float()

    def step_fn(model: torch.nn.Module, channels_last: bool = False) -> Runner:
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        xi = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
        model.train()

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            _loss(model(xi), y).backward()
            opt.step()

        return step

    return {
        "lgmsnet reference-attn": (step_fn(lgmsnet.create_model(attention_impl="reference")), "eager"),
        "lgmsnet sdpa": (step_fn(lgmsnet.create_model()), "eager"),
        "lgmsnet sdpa+channels_last": (step_fn(lgmsnet.create_model(), True), "channels_last"),
        "basicunet": (step_fn(_basic_unet()), "eager"),
    }


def measure(cands: dict[str, tuple[Runner, str]], warmup: int, repeats: int) -> dict[str, list[float]]:
    """Round-robin timing: each repeat runs every candidate once, so load spikes hit all of them."""
    with torch.inference_mode(False):
        for fn, _ in cands.values():
            for _ in range(warmup):
                fn()
    times: dict[str, list[float]] = {k: [] for k in cands}
    for _ in range(repeats):
        for name, (fn, _) in cands.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def _summ(v: list[float]) -> tuple[float, float, float]:
    return statistics.median(v), min(v), max(v)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=8, help="training batch")
    p.add_argument("--infer-repeats", type=int, default=20)
    p.add_argument("--train-repeats", type=int, default=5)
    p.add_argument("--no-train", dest="train", action="store_false")
    p.add_argument("--no-onnx", dest="onnx", action="store_false")
    p.add_argument("--compile", action="store_true", help="add a torch.compile row (minutes of warm-up on 2 cores)")
    p.add_argument("--autotune", action="store_true", help="with --compile: mode=max-autotune-no-cudagraphs")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    print(f"# torch {torch.__version__}, {args.threads} threads, input {args.size}x{args.size}", flush=True)

    report: dict[str, object] = {"threads": args.threads, "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        cands = inference_candidates(args, Path(tmp))
        with torch.inference_mode():
            t = measure(cands, warmup=3, repeats=args.infer_repeats)
    base = statistics.median(t["lgmsnet reference-attn"])
    peer = statistics.median(t["basicunet"])
    print(f"\n## Inference latency, batch 1 (ms; median [min–max] of {args.infer_repeats})")
    print(f"{'candidate':34s} {'median':>8s} {'min':>8s} {'max':>8s} {'vs ref':>7s} {'vs unet':>8s}  note")
    infer = {}
    for name, (_, note) in cands.items():
        med, lo, hi = _summ(t[name])
        infer[name] = {"median_ms": med * 1e3, "min_ms": lo * 1e3, "max_ms": hi * 1e3}
        print(f"{name:34s} {med*1e3:8.1f} {lo*1e3:8.1f} {hi*1e3:8.1f} {base/med:6.2f}x {med/peer:7.2f}x  {note}")
    report["inference"] = infer

    if args.train:
        tc = training_candidates(args)
        tt = measure(tc, warmup=1, repeats=args.train_repeats)
        tbase = statistics.median(tt["lgmsnet reference-attn"])
        tpeer = statistics.median(tt["basicunet"])
        print(f"\n## Training step, batch {args.batch} (s; median [min–max] of {args.train_repeats})")
        print(f"{'candidate':34s} {'median':>8s} {'min':>8s} {'max':>8s} {'img/s':>7s} {'vs ref':>7s} {'vs unet':>8s}")
        train = {}
        for name, _ in tc.items():
            med, lo, hi = _summ(tt[name])
            train[name] = {"median_s": med, "min_s": lo, "max_s": hi, "images_per_s": args.batch / med}
            print(
                f"{name:34s} {med:8.2f} {lo:8.2f} {hi:8.2f} {args.batch/med:7.2f} {tbase/med:6.2f}x {med/tpeer:7.2f}x"
            )
        report["train"] = train

    best = min((k for k in infer if k.startswith("lgmsnet")), key=lambda k: infer[k]["median_ms"])
    ratios = {
        "infer_speedup_sdpa_vs_reference": base / statistics.median(t["lgmsnet sdpa"]),
        "infer_speedup_best_vs_reference": base / (infer[best]["median_ms"] / 1e3),
        "infer_best_lgmsnet": best,
        "infer_best_lgmsnet_over_basicunet": infer[best]["median_ms"] / (peer * 1e3),
        "infer_sdpa_eager_over_basicunet_eager": statistics.median(t["lgmsnet sdpa"]) / peer,
    }
    if args.train:
        ratios["train_speedup_sdpa_vs_reference"] = tbase / statistics.median(tt["lgmsnet sdpa"])
        ratios["train_speedup_sdpa_cl_vs_reference"] = tbase / statistics.median(tt["lgmsnet sdpa+channels_last"])
        ratios["train_sdpa_over_basicunet"] = statistics.median(tt["lgmsnet sdpa"]) / tpeer
    report["ratios"] = ratios
    report["params"] = {"lgmsnet": _n_params(lgmsnet.create_model()), "basicunet": _n_params(_basic_unet())}
    print("\nBENCH_JSON " + json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
