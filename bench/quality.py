"""Quality benchmark on real data: Kvasir-SEG (in-domain) → CVC-ClinicDB (zero-shot), LGMSNet vs a peer U-Net.

Run ``make bench-quality`` (about an hour on 2 cores). For each model, with the same CPU recipe and the same
wall-clock training budget:

1. a group-aware, near-duplicate-aware split of Kvasir-SEG (fixed seed; 70/10/20), the validation split picks the
   best epoch, the test split is touched once;
2. training with SGD + poly LR (per iteration), the reference augmentation recipe, at ``--image-size`` (the number
   of epochs is chosen up front from a timed probe so that the poly schedule ends with the budget);
3. evaluation of ``best.pt`` on the Kvasir-SEG test split and zero-shot on all 612 CVC-ClinicDB frames, both at the
   images' native resolution (resize in, logits resized back out);
4. parameters, multiply-accumulates (fvcore convention, at 256² and at the training size), wall time.

Results: ``docs/benchmarks.md`` (table, recipe, honest notes), ``docs/img/quality_curves.png`` (validation Dice and
loss per epoch), the raw numbers in ``docs/quality.json``; overlays of the best and worst cases stay in the run
folder (``OUT/quality_overlays.png``), because they show dataset images. The datasets are read
from ``$LGMSNET_SHARED_DATA`` (default ``<repo>/../shared/data``) and never copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import lgmsnet  # noqa: E402
from lgmsnet.config import load_config  # noqa: E402
from lgmsnet.data import make_splits, write_manifest  # noqa: E402
from lgmsnet.engine import train  # noqa: E402
from lgmsnet.evaluation import evaluate, zero_shot  # noqa: E402
from lgmsnet.models.registry import list_models, register_model  # noqa: E402

log = logging.getLogger("bench.quality")


class _PeerUNet(nn.Module):
    """MONAI BasicUNet with the attributes the engine reads (in/out channels, spatial dims)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 1) -> None:
        super().__init__()
        from monai.networks.nets import BasicUNet

        self.net = BasicUNet(spatial_dims=2, in_channels=in_channels, out_channels=num_classes)
        self.in_channels, self.num_classes, self.spatial_dims = in_channels, num_classes, 2
        self.size_multiple = 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _register_peer() -> None:
    if "monai_basicunet" not in list_models():
        register_model("monai_basicunet", builder=_PeerUNet)


def _macs(name: str, size: int) -> float:
    from fvcore.nn import FlopCountAnalysis

    def sdpa(inputs: Any, outputs: Any) -> int:
        *b, n, d = inputs[0].type().sizes()
        return 2 * int(torch.tensor(b).prod()) * n * n * d

    m = lgmsnet.create_model(name).eval()
    f = FlopCountAnalysis(m, torch.randn(1, 3, size, size))
    f.set_op_handle("aten::scaled_dot_product_attention", sdpa)
    f.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return float(f.total())


def _probe_seconds_per_step(name: str, size: int, batch: int) -> float:
    """Median time of a training step (forward + backward + SGD) at the benchmark's size, channels_last."""
    torch.manual_seed(0)
    m = lgmsnet.create_model(name).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = (torch.rand(batch, 1, size, size) > 0.8).float()
    times = []
    for i in range(4):
        t0 = time.perf_counter()
        opt.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(m(x), y).backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_model(name: str, args: argparse.Namespace, kvasir: Path, cvc: Path, manifest: Path, out: Path) -> dict[str, Any]:
    n_train = len(json.loads(manifest.read_text())["train"])
    steps = n_train // args.batch
    step_s = _probe_seconds_per_step(name, args.image_size, args.batch)
    # validation ≈ 1/3 of a training step per validation batch; add 10 % slack
    epoch_s = 1.1 * (steps * step_s + (n_train / 7 / args.batch) * step_s / 3)
    epochs = args.epochs or max(1, int(args.budget_min * 60 // epoch_s))
    log.info("%s: %.2f s/step → %d epochs of %d steps in a %.0f-minute budget", name, step_s, epochs, steps, args.budget_min)
    run = out / name
    if run.exists():
        shutil.rmtree(run)
    cfg = load_config(
        None,
        {
            "model.name": name,
            "data.path": str(kvasir),
            "data.manifest": str(manifest),
            "data.image_size": args.image_size,
            "data.recipe": args.recipe,
            "data.cache_dir": str(out / "cache"),
            "optim.lr": args.lr,
            "train.epochs": epochs,
            "train.batch_size": args.batch,
            "train.seed": args.seed,
            "train.threads": args.threads,
            "train.test_after_training": False,
            "train.log_every": 20,
        },
    )
    t0 = time.perf_counter()
    res = train(cfg, run)
    train_s = time.perf_counter() - t0
    best = res.best_checkpoint
    test = evaluate(best, kvasir, run / "eval-kvasir-test", split="test", manifest=manifest,
                    image_size=args.image_size, hd95=True, n_overlays=3)
    zs = zero_shot(best, {"cvc-clinicdb": cvc}, run / "zero-shot", image_size=args.image_size, hd95=True, n_overlays=3)
    curves = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    (target,) = zs["targets"]
    if not target["zero_shot"]:
        raise SystemExit("CVC-ClinicDB has the training data's fingerprint: the benchmark is not zero-shot")
    zsm: dict[str, Any] = {}
    for k, v in target["metrics"].items():
        if isinstance(v, dict):
            zsm[k], zsm[f"{k}_std"] = v["mean"], v["std"]
        else:
            zsm[k] = v
    zsm["n_images"] = target["n_images"]
    return {
        "model": name,
        "params": sum(p.numel() for p in lgmsnet.create_model(name).parameters()),
        "macs_256": _macs(name, 256),
        f"macs_{args.image_size}": _macs(name, args.image_size),
        "seconds_per_step_probe": step_s,
        "epochs": epochs,
        "train_minutes": train_s / 60,
        "best_epoch": res.best_epoch + 1,
        "best_val_dice": res.best_val_dice,
        "kvasir_test": test.summary,
        "cvc_zero_shot": zsm,
        "curves": curves,
        "run_dir": str(run),
        "overlays": [str(p) for p in test.overlay_paths] + [str(p) for p in (run / "zero-shot").rglob("overlays/*.png")],
    }


def _run_in_process(name: str, args: argparse.Namespace, kvasir: Path, cvc: Path, manifest: Path,
                    out: Path) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s [{name}] %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    _register_peer()
    return run_model(name, args, kvasir, cvc, manifest, out)


def _plots(results: list[dict[str, Any]], img_dir: Path, overlay_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    img_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for r in results:
        ep = [c["step"] for c in r["curves"]]
        axes[0].plot(ep, [c.get("val_dice", float("nan")) for c in r["curves"]], marker="o", label=r["model"])
        axes[1].plot(ep, [c["train_loss"] for c in r["curves"]], marker="o", label=r["model"])
    axes[0].set(xlabel="epoch", ylabel="validation Dice (Kvasir-SEG val split)", ylim=(0, 1))
    axes[1].set(xlabel="epoch", ylabel="training loss (0.5·BCE + Dice)")
    for a in axes:
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    curves = img_dir / "quality_curves.png"
    fig.savefig(curves, dpi=110)
    plt.close(fig)

    lg = next((r for r in results if r["model"] == "lgmsnet"), results[0])
    tiles = [Image.open(p).convert("RGB") for p in lg["overlays"][:6]]
    out = [str(curves)]
    if tiles:
        h = 220
        tiles = [t.resize((int(t.width * h / t.height), h)) for t in tiles]
        sheet = Image.new("RGB", (sum(t.width for t in tiles), h), "white")
        x = 0
        for t in tiles:
            sheet.paste(t, (x, 0))
            x += t.width
        # overlays show dataset images (research-use terms): they stay in the run folder, never in the repository
        sheet.save(overlay_dir / "quality_overlays.png")
        out.append(str(overlay_dir / "quality_overlays.png"))
    return out


def _fmt(m: dict[str, Any], k: str) -> str:
    v, s = m.get(k), m.get(f"{k}_std")
    if v is None:
        return "–"
    return f"{v:.3f} ± {s:.3f}" if s is not None else f"{v:.3f}"


def write_report(results: list[dict[str, Any]], args: argparse.Namespace, path: Path) -> None:
    size = args.image_size
    lines = [
        "# Benchmarks",
        "",
        "## Quality on real data: Kvasir-SEG → CVC-ClinicDB (zero-shot), CPU budget",
        "",
        f"Produced by `make bench-quality` (`bench/quality.py`) on {time.strftime('%Y-%m-%d')}, "
        f"torch {torch.__version__}, {args.threads} CPU thread(s) per model, {args.jobs} model(s) trained at a time "
        "(a shared 2-core machine).",
        "",
        "| model | params | MACs @256² | MACs @%d² | epochs | train time | best epoch | val Dice | Kvasir test Dice | Kvasir test IoU | Kvasir HD95 px | CVC zero-shot Dice | CVC zero-shot IoU | CVC HD95 px |" % size,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        t, z = r["kvasir_test"], r["cvc_zero_shot"]
        lines.append(
            f"| {r['model']} | {r['params']:,} | {r['macs_256'] / 1e9:.2f} G | {r[f'macs_{size}'] / 1e9:.2f} G | "
            f"{r['epochs']} | {r['train_minutes']:.1f} min | {r['best_epoch']} | {r['best_val_dice']:.3f} | "
            f"{_fmt(t, 'dice')} | {_fmt(t, 'iou')} | {_fmt(t, 'hd95')} | {_fmt(z, 'dice')} | {_fmt(z, 'iou')} | "
            f"{_fmt(z, 'hd95')} |"
        )
    lines += [
        "",
        "Metrics are computed per image and averaged over images (± standard deviation over images), at each image's "
        "native resolution (the network sees the image resized to the training size; its logits are resized back). "
        "HD95 in pixels of the native image. Kvasir test = the 200-image test split of a group-aware 70/10/20 split "
        f"(seed {args.seed}; the 3 near-duplicate pairs of PROVENANCE.md stay within one split); CVC-ClinicDB = all "
        "612 frames, never seen in training (not comparable with the 550/62 PraNet protocol).",
        "",
        "### Recipe (CPU)",
        "",
        f"- image size {size}×{size}, batch {args.batch}, SGD momentum 0.9, weight decay 1e-4, lr {args.lr} with a "
        f"per-iteration poly schedule (power 0.9), augmentation recipe `{args.recipe}`, seed {args.seed}, channels_last;",
        (f"- the same number of epochs for both models ({args.epochs}); wall times were measured on a machine shared "
         "with other jobs, so compare them side by side only;" if args.epochs else
         f"- the same wall-clock training budget for both models ({args.budget_min:.0f} min each): the number of epochs "
         "comes from a timed probe of the training step, so a faster model gets more epochs;"),
        "- the validation split (100 images) picks the best epoch; the test split is evaluated once, after training.",
        "",
        "![validation Dice and training loss per epoch](img/quality_curves.png)",
        "",
        "Best and worst cases (overlays of LGMSNet on Kvasir test and CVC zero-shot) are written to "
        f"`{args.out.name}/quality_overlays.png` and each run's `overlays/` folders; they show dataset images, which "
        "are for research use only, so they are not committed here.",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    notes = path.parent / "benchmarks_notes.md"
    if notes.is_file():
        lines += [notes.read_text()]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path(os.environ.get("LGMSNET_SHARED_DATA", REPO.parent / "shared" / "data")))
    p.add_argument("--out", type=Path, default=REPO / "runs" / "bench-quality")
    p.add_argument("--models", default="lgmsnet,monai_basicunet")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.03)
    p.add_argument("--recipe", default="reference")
    p.add_argument("--budget-min", type=float, default=27.0, help="training minutes per model")
    p.add_argument("--epochs", type=int, default=12, help="epochs per model (0: derive them from --budget-min and a timed probe)")
    p.add_argument("--threads", type=int, default=2, help="torch threads per model process")
    p.add_argument("--jobs", type=int, default=1, help="train the models in parallel processes (e.g. 2 × 1 thread)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--docs", type=Path, default=REPO / "docs")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    kvasir, cvc = args.data / "kvasir-seg", args.data / "cvc-clinicdb"
    for d in (kvasir, cvc):
        if not (d / "images").is_dir():
            raise SystemExit(f"dataset {d} not found; set LGMSNET_SHARED_DATA or --data to the folder holding it")
    _register_peer()
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = write_manifest(make_splits(kvasir, seed=args.seed), args.out / "kvasir-splits.json")
    models = [m.strip() for m in args.models.split(",")]
    if args.jobs > 1:
        # side by side: one process per model, args.threads threads each (no oversubscription of the cores)
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(args.jobs, len(models))) as pool:
            results = pool.starmap(_run_in_process, [(m, args, kvasir, cvc, manifest, args.out) for m in models])
    else:
        results = [run_model(m, args, kvasir, cvc, manifest, args.out) for m in models]
    (args.docs / "img").mkdir(parents=True, exist_ok=True)
    _plots(results, args.docs / "img", args.out)
    slim = [{k: v for k, v in r.items() if k not in ("overlays",)} for r in results]
    (args.docs / "quality.json").write_text(json.dumps(slim, indent=2, default=str))
    write_report(results, args, args.docs / "benchmarks.md")
    for r in results:
        print(
            f"{r['model']:18s} params {r['params']:>9,}  epochs {r['epochs']:3d}  train {r['train_minutes']:5.1f} min  "
            f"kvasir test dice {r['kvasir_test']['dice']:.4f}  cvc zero-shot dice {r['cvc_zero_shot']['dice']:.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
