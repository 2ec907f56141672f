"""``make demo`` without the MLOps layer: synthetic data → train → test split → zero-shot → ONNX, offline, on CPU.

Everything it generates is SYNTHETIC (lesion-like blobs in two visual styles standing in for a source and a
target domain); no medical data is read or downloaded. Usage: ``python -m lgmsnet.demo --out demo``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "run_demo"]

log = logging.getLogger("lgmsnet.demo")


def run_demo(out: Path, *, epochs: int = 8, image_size: int = 128, n_source: int = 120, n_target: int = 40,
             model: str = "lgmsnet") -> dict[str, float]:
    """Run the end-to-end slice into ``out`` (replaced if it exists) and return the headline metrics."""
    from lgmsnet.checkpoint import model_from_checkpoint
    from lgmsnet.config import load_config
    from lgmsnet.data import synthesize
    from lgmsnet.engine import train
    from lgmsnet.evaluation import summary_table, zero_shot

    if out.exists():
        shutil.rmtree(out)
    src = synthesize(out / "data" / "synthetic-source", n_source, "source", seed=0, size=image_size)
    tgt = synthesize(out / "data" / "synthetic-target", n_target, "target", seed=1, size=image_size)
    cfg = load_config(None, {
        "model.name": model, "data.path": str(src), "data.image_size": image_size,
        "data.cache_dir": str(out / "cache"), "train.epochs": epochs, "train.batch_size": 8, "optim.lr": 0.05,
    })
    res = train(cfg, out / "run")
    zs = zero_shot(res.best_checkpoint, {"synthetic-target": tgt}, out / "zero-shot", image_size=image_size)
    print(summary_table(zs))
    onnx = None
    try:
        from lgmsnet.export import export_onnx

        onnx = export_onnx(model_from_checkpoint(res.best_checkpoint), out / "model.onnx", image_size).path
    except RuntimeError as exc:  # the export extra is optional
        log.warning("ONNX export skipped: %s", exc)
    metrics = {
        "val_dice": res.best_val_dice,
        "test_dice": (res.test_metrics or {}).get("dice", float("nan")),
        "zero_shot_dice": zs["targets"][0]["metrics"]["dice"]["mean"],
    }
    print(
        f"\nDemo finished (SYNTHETIC data). Run folder: {out / 'run'}\n"
        f"  best checkpoint: {res.best_checkpoint} (epoch {res.best_epoch + 1}, val Dice {metrics['val_dice']:.3f})\n"
        f"  test split Dice {metrics['test_dice']:.3f}; zero-shot Dice on the synthetic target domain "
        f"{metrics['zero_shot_dice']:.3f} (report: {out / 'zero-shot' / 'summary.md'})\n"
        + (f"  ONNX model: {onnx}\n" if onnx else "")
    )
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=Path("demo"))
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--model", default="lgmsnet")
    args = p.parse_args(argv)
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    run_demo(args.out, epochs=args.epochs, image_size=args.image_size, model=args.model)
    log.info("demo took %.0f s", time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
