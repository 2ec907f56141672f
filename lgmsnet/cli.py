"""The ``lgmsnet`` command line: thin argparse over typed functions.

Every command returns an exit status: 0 on success, 1 when the input is bad or the work failed (the message names
the file or setting at fault), 2 for a usage error (argparse).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

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


def build_parser() -> argparse.ArgumentParser:
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

    for register in _EXTRA_COMMANDS:
        register(sub)
    return p


# Later modules (training, evaluation, data) add subcommands here without touching the core ones.
_EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (also used by the ``lgmsnet`` console script)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: _Handler = args.func
    try:
        return handler(args)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
        # ValueError covers DatasetError, CheckpointError and config errors: the message names the item and the fix.
        print(f"lgmsnet {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lgmsnet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
