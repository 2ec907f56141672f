"""The ``lgmsnet`` command line: thin argparse over typed functions.

Every command returns an exit status: 0 on success, 1 when the input is bad or the work failed (the message names
the file or setting at fault), 2 for a usage error (argparse).

Commands::

    lgmsnet models | convert-official | export
    lgmsnet data synth | split | validate | cache
    lgmsnet train                                   (engine; registered next to the data commands)
    lgmsnet evaluate | zero-shot | predict
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["main"]

log = logging.getLogger("lgmsnet")

_Handler = Callable[[argparse.Namespace], int]


def _cmd_models(args: argparse.Namespace) -> int:
    import lgmsnet

    for name in lgmsnet.list_models():
        print(name)
    return 0


def _cmd_convert_official(args: argparse.Namespace) -> int:
    from lgmsnet.checkpoint import convert_official_checkpoint, load_checkpoint

    out = convert_official_checkpoint(args.src, args.dst)
    ckpt = load_checkpoint(out)
    print(f"wrote {out} (model {ckpt['model_name']}, {json.dumps(ckpt['model_kwargs'])})")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from lgmsnet.checkpoint import model_from_checkpoint
    from lgmsnet.export import export_onnx

    if args.format != "onnx":  # argparse restricts choices; kept for clarity when called programmatically
        raise ValueError(f"unsupported export format {args.format!r}; valid: onnx")
    model = model_from_checkpoint(args.checkpoint)
    out = Path(args.out) if args.out else Path(args.checkpoint).with_suffix(".onnx")
    res = export_onnx(model, out, args.image_size, opset=args.opset, check=not args.no_check)
    parity = "not checked" if res.max_abs_diff is None else f"ONNX Runtime max abs diff {res.max_abs_diff:.2e}"
    print(f"wrote {res.path} (example input {res.input_shape}; {parity})")
    return 0


# --------------------------------------------------------------------------------------------- data


def _ratios_arg(text: str) -> tuple[float, float, float]:
    hint = f"ratios must be three comma-separated numbers (train,val,test), e.g. 0.7,0.1,0.2; got {text!r}"
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(hint) from exc
    if len(values) != 3:
        raise argparse.ArgumentTypeError(hint)
    return values[0], values[1], values[2]


def _size_arg(text: str) -> int | str:
    if text == "native":
        return "native"
    hint = f"image size must be a positive integer (pixels) or 'native'; got {text!r}"
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(hint) from exc
    if value < 1:
        raise argparse.ArgumentTypeError(hint)
    return value


def _cmd_data_synth(args: argparse.Namespace) -> int:
    from lgmsnet.data import synthesize

    out = synthesize(
        args.out,
        args.n,
        domain=args.domain,
        seed=args.seed,
        size=args.size,
        empty_fraction=args.empty_fraction,
        overwrite=args.overwrite,
    )
    print(
        f"wrote {args.n} SYNTHETIC image/mask pairs (not medical images; domain {args.domain}, seed {args.seed}, "
        f"{args.size}x{args.size}) to {out}"
    )
    return 0


def _cmd_data_split(args: argparse.Namespace) -> int:
    from lgmsnet.data import DatasetError, load_manifest, make_splits, write_manifest

    previous = None
    if Path(args.out).is_file():
        try:
            previous = load_manifest(args.out)
        except DatasetError as exc:
            log.warning("not reusing the image hashes of %s: %s", args.out, exc)
    manifest = make_splits(
        args.data, seed=args.seed, ratios=args.ratios, hash_threshold=args.hash_threshold, previous=previous
    )
    out = write_manifest(manifest, args.out)
    print(
        f"wrote {out}: train/val/test = {len(manifest.train)}/{len(manifest.val)}/{len(manifest.test)} images "
        f"(seed {manifest.seed}, {len(manifest.groups)} multi-image group(s), fingerprint {manifest.fingerprint[:12]})"
    )
    return 0


def _cmd_data_validate(args: argparse.Namespace) -> int:
    from lgmsnet.data import scan_pairs, validate_pairs

    pairs = scan_pairs(args.data)
    report = validate_pairs(pairs, mask_threshold=args.mask_threshold, raise_on_error=False)
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        sizes: dict[tuple[int, int], int] = {}
        for hw in report.sizes.values():
            sizes[hw] = sizes.get(hw, 0) + 1
        size_text = ", ".join(f"{w}x{h} ({n})" for (h, w), n in sorted(sizes.items(), key=lambda kv: -kv[1])[:5])
        print(
            f"{args.data}: {report.n_pairs} pair(s), {len(report.errors)} error(s), {len(report.warnings)} warning(s), "
            f"{report.n_empty_masks} empty mask(s), {report.n_non_binary_masks} mask(s) with values outside {{0, 255}}"
        )
        if size_text:
            print(f"sizes (WxH): {size_text}")
        for title, items in (("errors", report.errors), ("warnings", report.warnings)):
            if items:
                print(f"{title}:")
                for item in items:
                    print(f"- {item}")
    if not report.ok:
        print(f"lgmsnet data validate: error: {len(report.errors)} problem(s) in {args.data}", file=sys.stderr)
        return 1
    return 0


def _cmd_data_cache(args: argparse.Namespace) -> int:
    from lgmsnet.data import build_cache, read_cache_index

    out = build_cache(args.data, args.out, args.size, mask_threshold=args.mask_threshold)
    index = read_cache_index(out) or {}
    fingerprint = str(index.get("fingerprint", ""))[:12]
    print(f"cache {out}: {index.get('n', '?')} pair(s) at {args.size}x{args.size} (fingerprint {fingerprint})")
    return 0


def _register_data(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    from lgmsnet.data import DEFAULT_HASH_THRESHOLD, DEFAULT_MASK_THRESHOLD, DEFAULT_RATIOS, DOMAINS

    d = sub.add_parser("data", help="dataset tools: synthetic data, splits, validation, preprocessing cache")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")

    s = dsub.add_parser("synth", help="write a SYNTHETIC lesion-like dataset (not medical images)")
    s.add_argument("--out", required=True, help="output folder (absent or empty, unless --overwrite)")
    s.add_argument("--n", type=int, required=True, help="number of image/mask pairs")
    s.add_argument("--domain", choices=sorted(DOMAINS), default="source")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", type=int, default=256, help="image height and width in pixels (>= 32)")
    s.add_argument("--empty-fraction", type=float, default=0.1, help="fraction of images without a lesion")
    s.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    s.set_defaults(func=_cmd_data_synth)

    s = dsub.add_parser("split", help="group-aware, near-duplicate-aware train/val/test split manifest")
    s.add_argument("--data", required=True, help="dataset folder (images/ + masks/)")
    s.add_argument("--out", required=True, help="manifest JSON to write (its image hashes are reused if present)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--ratios", type=_ratios_arg, default=DEFAULT_RATIOS, help="train,val,test fractions (default 0.7,0.1,0.2)"
    )
    s.add_argument(
        "--hash-threshold", type=int, default=DEFAULT_HASH_THRESHOLD, help="near-duplicate dHash distance; <0 disables"
    )
    s.set_defaults(func=_cmd_data_split)

    s = dsub.add_parser("validate", help="decode every file; report unreadable files, size mismatches, empty masks")
    s.add_argument("--data", required=True)
    s.add_argument("--mask-threshold", type=int, default=DEFAULT_MASK_THRESHOLD, help="foreground is mask > this")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(func=_cmd_data_validate)

    s = dsub.add_parser("cache", help="resize a dataset once to SIZE x SIZE PNGs (reused while up to date)")
    s.add_argument("--data", required=True)
    s.add_argument("--out", required=True, help="cache folder")
    s.add_argument("--size", type=int, required=True)
    s.add_argument("--mask-threshold", type=int, default=DEFAULT_MASK_THRESHOLD)
    s.set_defaults(func=_cmd_data_cache)
    from lgmsnet.data.import_cli import register as _register_import

    _register_import(dsub)
    return dsub


# --------------------------------------------------------------------------------------------- evaluation


def _metric_line(metrics: dict[str, Any]) -> str:
    def one(name: str, digits: int = 4) -> str:
        block = metrics.get(name)
        if not block or block.get("mean") is None:
            return f"{name} n/a"
        return f"{name} {block['mean']:.{digits}f} ± {block['std']:.{digits}f}"

    parts = [one("dice"), one("iou"), one("sensitivity"), one("precision")]
    if "hd95" in metrics:
        parts.append(one("hd95", 2) + " px")
    return ", ".join(parts)


def _add_eval_options(s: argparse.ArgumentParser) -> None:
    from lgmsnet.data import DEFAULT_MASK_THRESHOLD

    s.add_argument(
        "--image-size",
        type=_size_arg,
        default=None,
        help="network input size in pixels (resize in, logits resized back to native), or 'native'; "
        "default: the training size in the checkpoint's config, else native",
    )
    s.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N (default cpu)")
    s.add_argument("--batch-size", type=int, default=4)
    s.add_argument("--no-hd95", action="store_true", help="skip HD95 (CPU-bound on large images)")
    s.add_argument("--overlays", type=int, default=4, help="best and worst images to draw (0: none)")
    s.add_argument("--mask-threshold", type=int, default=DEFAULT_MASK_THRESHOLD, help="ground truth is mask > this")


def _eval_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "image_size": args.image_size,
        "device": args.device,
        "batch_size": args.batch_size,
        "hd95": not args.no_hd95,
        "n_overlays": args.overlays,
        "mask_threshold": args.mask_threshold,
    }


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from lgmsnet.evaluation import evaluate

    if args.split and not args.manifest:
        raise ValueError(f"--split {args.split} needs --manifest M (a manifest written by `lgmsnet data split`)")
    res = evaluate(
        args.checkpoint, args.data, args.out, split=args.split, manifest=args.manifest, **_eval_kwargs(args)
    )
    policy = res.policy
    size = f"{policy.image_size}px resize in/out" if policy.mode == "resize" else "native size"
    print(f"evaluated {res.n_images} image(s) ({size}): {_metric_line(res.report['metrics'])}")
    print(f"wrote {res.metrics_path}, {res.per_image_path}, {len(res.overlay_paths)} overlay(s)")
    return 0


def _target_arg(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep:
        return Path(text).name, text
    if not name or not path:
        raise argparse.ArgumentTypeError(f"--target must be NAME=DIR (or DIR); got {text!r}")
    return name, path


def _cmd_zero_shot(args: argparse.Namespace) -> int:
    from lgmsnet.evaluation import summary_table, zero_shot

    names = [n for n, _ in args.target]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"--target names must be unique; repeated: {', '.join(dupes)}. Use NAME=DIR to name each.")
    summary = zero_shot(args.checkpoint, dict(args.target), args.out, **_eval_kwargs(args))
    print(summary_table(summary))
    not_zero = [t["name"] for t in summary["targets"] if not t["zero_shot"]]
    if not_zero:
        print(
            f"WARNING: {', '.join(not_zero)} has the checkpoint's training data fingerprint: NOT zero-shot",
            file=sys.stderr,
        )
    print(f"wrote {Path(args.out) / 'summary.json'} and {Path(args.out) / 'summary.md'}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from lgmsnet.evaluation import predict

    paths = predict(
        args.checkpoint,
        args.images,
        args.out,
        image_size=args.image_size,
        threshold=args.threshold,
        device=args.device,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
    )
    print(f"wrote {len(paths)} mask(s) ({{0, 255}} PNG, native size) to {args.out}")
    return 0


def _register_evaluation(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("evaluate", help="score a checkpoint on a dataset: metrics.json, per_image.csv, overlays")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--data", required=True, help="dataset folder (images/ + masks/)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--split", help="evaluate one split (train, val, test) of --manifest")
    s.add_argument("--manifest", help="split manifest (lgmsnet data split)")
    _add_eval_options(s)
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser("zero-shot", help="evaluate a checkpoint on one or more unseen target datasets")
    s.add_argument("--checkpoint", required=True)
    s.add_argument(
        "--target",
        type=_target_arg,
        action="append",
        required=True,
        help="NAME=DIR (repeatable); DIR alone uses its folder name",
    )
    s.add_argument("--out", required=True, help="output folder: OUT/<NAME>/ per target, OUT/summary.{json,md}")
    _add_eval_options(s)
    s.set_defaults(func=_cmd_zero_shot)

    s = sub.add_parser("predict", help="write binary masks ({0,255} PNG, native size) for a folder of images")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--images", required=True, help="folder of png/jpg/jpeg/bmp/tif/tiff images")
    s.add_argument("--out", required=True, help="output folder (replaced as a whole when every image succeeded)")
    s.add_argument("--image-size", type=_size_arg, default=None, help="as for evaluate")
    s.add_argument("--threshold", type=float, default=0.5, help="foreground probability threshold")
    s.add_argument("--device", default="cpu")
    s.add_argument("--batch-size", type=int, default=4)
    s.add_argument("--overwrite", action="store_true", help="replace a non-empty folder that is not a prediction")
    s.set_defaults(func=_cmd_predict)


def build_parser(extensions: Sequence[Extension] = ()) -> argparse.ArgumentParser:
    """The ``lgmsnet`` argument parser (subcommands register their handler as ``func``)."""
    p = argparse.ArgumentParser(prog="lgmsnet", description="LGMSNet segmentation: models, training, evaluation.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("models", help="list registered model variants")
    s.set_defaults(func=_cmd_models)

    s = sub.add_parser(
        "convert-official",
        help="convert a state dict saved by the authors' LGMSNet code into an lgmsnet checkpoint",
    )
    s.add_argument("src", help="reference state dict (.pt/.pth)")
    s.add_argument("dst", help="lgmsnet checkpoint to write")
    s.set_defaults(func=_cmd_convert_official)

    s = sub.add_parser("export", help="export a checkpoint (ONNX, checked with ONNX Runtime)")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--format", choices=["onnx"], default="onnx")
    s.add_argument("--out", help="output file (default: the checkpoint path with .onnx)")
    s.add_argument("--image-size", type=int, default=256, help="example input size (dynamic batch; fixed size)")
    s.add_argument("--opset", type=int, default=18)
    s.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime parity check")
    s.set_defaults(func=_cmd_export)

    groups = {"data": _register_data(sub)}

    _register_train(sub)

    _register_evaluation(sub)

    for extend in extensions:
        extend(sub, groups)
    return p


def _set_arg(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected SECTION.KEY=VALUE (e.g. optim.lr=0.02), got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed = yaml.safe_load(value) if value else ""
    except yaml.YAMLError:
        parsed = value
    return key.strip(), parsed


def _cmd_train(args: argparse.Namespace) -> int:
    from lgmsnet.config import ConfigError, load_config
    from lgmsnet.engine import train

    if not args.data and not args.resume:
        raise ConfigError("--data DIR is required (a folder with images/ and masks/), unless --resume")
    overrides: dict[str, Any] = {
        "data.path": args.data,
        "train.epochs": args.epochs,
        "data.image_size": args.image_size,
        "model.name": args.model,
        "train.device": args.device,
    }
    overrides.update(dict(args.set or []))
    cfg = load_config(args.config, overrides)
    res = train(cfg, args.out, resume=args.resume)
    if res.best_epoch >= 0:
        print(f"best epoch {res.best_epoch + 1}/{res.epochs}: val dice {res.best_val_dice:.4f} -> {res.best_checkpoint}")
    if res.test_metrics:
        print(f"test split: dice {res.test_metrics['dice']:.4f}  iou {res.test_metrics['iou']:.4f} "
              f"({int(res.test_metrics['n_images'])} images)")
    return 0


def _register_train(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "train",
        help="train a model (single process, or DDP under torchrun)",
        description="Train LGMSNet. Flags override the --config file; --set overrides any SECTION.KEY. "
        "Checkpoints: RUN_DIR/checkpoints/last.pt (every epoch) and best.pt (best validation Dice).",
    )
    s.add_argument("--config", help="YAML config (sections model, data, optim, train)")
    s.add_argument("--data", help="dataset folder with images/ and masks/")
    s.add_argument("--out", required=True, help="run folder")
    s.add_argument("--resume", action="store_true", help="continue RUN_DIR from checkpoints/last.pt")
    s.add_argument("--epochs", type=int)
    s.add_argument("--image-size", type=int)
    s.add_argument("--model", help="a registered model name (see `lgmsnet models`)")
    s.add_argument("--device", help="cpu, cuda or cuda:N")
    s.add_argument("--set", action="append", type=_set_arg, metavar="SECTION.KEY=VALUE", help="override a setting")
    s.set_defaults(func=_cmd_train)


Extension = Callable[[argparse._SubParsersAction, dict[str, argparse._SubParsersAction]], None]


def main(argv: Sequence[str] | None = None, extensions: Sequence[Extension] = ()) -> int:
    """Run the CLI; returns the exit status.

    Args:
        argv: arguments (default: ``sys.argv[1:]``).
        extensions: callables ``f(subparsers, groups)`` that add commands (the MLOps layer adds ``registry``,
            ``pipeline`` …); ``groups["data"]`` is the ``data`` command group.
    """
    # Entry point: keep albumentations from querying PyPI when a transform pipeline is built.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    args = build_parser(extensions).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: _Handler = args.func
    command = " ".join(filter(None, [args.command, getattr(args, "data_command", None)]))
    try:
        return handler(args)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
        # ValueError covers DatasetError, CheckpointError and config errors: the message names the item and the fix.
        print(f"lgmsnet {command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lgmsnet {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
