"""``lgmsnet data import FORMAT SRC --out DIR``: thin argparse over :func:`lgmsnet.data.importers.import_dataset`.

Usage::

    lgmsnet data import kvasir-seg ~/Downloads/kvasir-seg.zip --out data/kvasir-seg
    lgmsnet data import cvc-clinicdb ~/Downloads/CVC-ClinicDB --out data/cvc-clinicdb
    lgmsnet data import busi Dataset_BUSI_with_GT.zip --out data/busi [--include-normal]
    lgmsnet data import folder some/dataset --out data/copy [--mask-threshold 0]

The lead wires :func:`register` into ``lgmsnet.cli`` (``_register_data``); errors (``DatasetError`` and other
``ValueError``) propagate to ``lgmsnet.cli.main``, which prints them and exits with status 1.
"""

from __future__ import annotations

import argparse

__all__ = ["register"]


def _cmd_data_import(args: argparse.Namespace) -> int:
    from lgmsnet.data.importers import import_dataset

    report = import_dataset(
        args.dataset_format,
        args.src,
        args.out,
        overwrite=args.overwrite,
        include_normal=args.include_normal,
        mask_threshold=args.mask_threshold,
    )
    print(report.summary())
    return 0


def register(data_subparsers: argparse._SubParsersAction) -> None:
    """Add the ``import`` command to the ``lgmsnet data`` command group.

    Args:
        data_subparsers: the sub-parsers action of the ``data`` parser (``dest="data_command"``).
    """
    from lgmsnet.data.importers import IMPORTERS

    p = data_subparsers.add_parser(
        "import",
        help="turn a downloaded public dataset (zip or folder) into a folder dataset with provenance",
        description=(
            "Import a public dataset as downloaded (official .zip or extracted folder) into DIR/images + DIR/masks "
            "(masks binarised to {0,255} PNG), with groups.csv where the dataset has groups and dataset.yaml "
            "recording source, sha256, homepage, citation, licence and counts. The output is written atomically."
        ),
    )
    p.add_argument("dataset_format", metavar="FORMAT", choices=sorted(IMPORTERS), help=", ".join(sorted(IMPORTERS)))
    p.add_argument("src", metavar="SRC", help="downloaded archive (.zip) or folder")
    p.add_argument("--out", required=True, help="output folder (absent or empty, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument(
        "--include-normal",
        action="store_true",
        help="busi only: also import the 'normal' class (no lesion, empty masks); excluded and counted by default",
    )
    p.add_argument(
        "--mask-threshold",
        type=int,
        default=None,
        help="folder only: foreground is mask > this (default 127; 0 for 0/1 label masks)",
    )
    p.set_defaults(func=_cmd_data_import)
