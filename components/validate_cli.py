"""``lgmsnet data validate | profile | drift``: thin argparse over :mod:`components.validation` and ``profile``.

Usage::

    lgmsnet data validate DIR --report OUT [--split-manifest M] [--target-dir T] [--reference-profile P]
                          [--severity RULE=error|warning ...] [--severity-file YAML] [--min-size PX]
                          [--hash-threshold D] [--non-binary-tolerance F] [--workers N]
    lgmsnet data profile DIR --out P.json
    lgmsnet data drift --reference P.json DIR --out REPORT [--fail-on-drift]

``validate`` exits 0 only when the data passes; otherwise it prints ONE message naming every failing item
(file and rule) on stderr and returns 1. Wire it in with ``lgmsnet.cli.main(extensions=[...])`` calling
:func:`register` on the ``data`` group; it replaces the core ``data validate`` command.
"""

from __future__ import annotations

import argparse
import logging
import sys

__all__ = ["register"]

_COMMANDS = ("validate", "profile", "drift")
_MAX_WARNINGS_SHOWN = 20


def _severity_arg(text: str) -> tuple[str, str]:
    rule, sep, level = text.partition("=")
    if not sep or not rule or level.lower() not in ("error", "warning"):
        raise argparse.ArgumentTypeError(f"expected RULE=error or RULE=warning (e.g. empty_mask=error), got {text!r}")
    return rule.strip(), level.lower()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _quiet_gx() -> None:
    # Entry point: GX logs its internals at INFO; keep the command output readable.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)


def _cmd_validate(args: argparse.Namespace) -> int:
    from components.validation import load_severity_overrides, validate_dataset

    _quiet_gx()
    overrides: dict[str, str] = {}
    if args.severity_file:
        overrides.update(load_severity_overrides(args.severity_file))
    overrides.update(dict(args.severity or []))
    result = validate_dataset(
        args.data,
        report_dir=args.report,
        manifest=args.split_manifest,
        target_dir=args.target_dir,
        reference_profile=args.reference_profile,
        severity_overrides=overrides or None,
        min_size=args.min_size,
        hash_threshold=args.hash_threshold,
        non_binary_tolerance=args.non_binary_tolerance,
        workers=args.workers,
    )
    status = "PASSED" if result.passed else "FAILED"
    print(
        f"{args.data}: {result.n_items} pair(s) validated in {result.seconds:.1f} s: {status} "
        f"({len(result.errors)} error(s), {len(result.warnings)} warning(s))"
    )
    print(f"report: {result.summary_path}")
    if result.data_docs_path is not None:
        print(f"data docs: {result.data_docs_path}")
    if result.drift_paths is not None and result.drift is not None:
        print(f"drift: {len(result.drift.drifted)} statistic(s) drifted, see {result.drift_paths[1]}")
    if result.warnings:
        print("warnings:")
        for finding in result.warnings[:_MAX_WARNINGS_SHOWN]:
            print(f"- {finding}")
        if len(result.warnings) > _MAX_WARNINGS_SHOWN:
            print(f"- ... and {len(result.warnings) - _MAX_WARNINGS_SHOWN} more in {result.summary_path}")
    if not result.passed:
        message = f"lgmsnet data validate: error: {args.data} failed validation: {result.failure_message()}"
        print(message, file=sys.stderr)
        return 1
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    from components.profile import profile_dataset, write_profile

    profile = profile_dataset(args.data, workers=args.workers)
    out = write_profile(profile, args.out)
    print(f"wrote {out}: profile of {profile.n_profiled}/{profile.n} pair(s) of {args.data}")
    return 0


def _cmd_drift(args: argparse.Namespace) -> int:
    from components.profile import compare_profiles, load_profile, profile_dataset, write_drift_report

    reference = load_profile(args.reference)
    candidate = profile_dataset(args.data, workers=args.workers)
    report = compare_profiles(reference, candidate)
    json_path, md_path = write_drift_report(report, args.out)
    print(report.to_markdown())
    print(f"wrote {json_path} and {md_path}")
    if report.has_drift and args.fail_on_drift:
        names = ", ".join(s.name for s in report.drifted)
        print(f"lgmsnet data drift: error: {args.data} drifted from {args.reference}: {names}", file=sys.stderr)
        return 1
    return 0


def _rules_epilog() -> str | None:
    from components.validation import default_severities

    try:
        severities = default_severities()
    except (OSError, ValueError):  # a broken suite file must not break every other command's parser
        return None
    by_level = {level: sorted(r for r, s in severities.items() if s == level) for level in ("error", "warning")}
    return (
        f"rules (default error): {', '.join(by_level['error'])}; "
        f"(default warning): {', '.join(by_level['warning'])}. Change one with --severity RULE=error|warning."
    )


def _drop_existing(data_subparsers: argparse._SubParsersAction, name: str) -> None:
    """Remove a command registered earlier under ``name`` (argparse >= 3.11 refuses duplicates)."""
    if name in data_subparsers.choices:
        data_subparsers.choices.pop(name)
        data_subparsers._choices_actions[:] = [a for a in data_subparsers._choices_actions if a.dest != name]


def register(data_subparsers: argparse._SubParsersAction) -> None:
    """Add ``validate`` (replacing the core one), ``profile`` and ``drift`` to the ``lgmsnet data`` group.

    Args:
        data_subparsers: the ``data`` group's subparsers (``groups["data"]`` in a ``lgmsnet.cli.main`` extension).
    """
    from lgmsnet.data import DEFAULT_HASH_THRESHOLD

    from components.validation import DEFAULT_MIN_SIZE, DEFAULT_NON_BINARY_TOLERANCE

    for name in _COMMANDS:
        _drop_existing(data_subparsers, name)

    s = data_subparsers.add_parser(
        "validate",
        help="validate a dataset (Great Expectations suite + pairing/leakage/drift checks); exit 1 on any error",
        description="Decode every pair once, run the expectation suite and the extra checks, write "
        "OUT/summary.json and GX data docs (OUT/data_docs/index.html) whether the data passes or not.",
        epilog=_rules_epilog(),
    )
    s.add_argument("data", metavar="DIR", help="dataset folder (images/ + masks/)")
    s.add_argument("--report", required=True, metavar="OUT", help="report folder")
    s.add_argument("--split-manifest", metavar="M", help="split manifest JSON: check leakage across train/val/test")
    s.add_argument("--target-dir", metavar="T", help="zero-shot target dataset: check near-duplicates with DIR")
    s.add_argument("--reference-profile", metavar="P", help="profile JSON (lgmsnet data profile): report drift")
    s.add_argument("--severity", action="append", type=_severity_arg, metavar="RULE=LEVEL",
                   help="override a rule's severity (error or warning); repeatable")  # fmt: skip
    s.add_argument("--severity-file", metavar="YAML", help="YAML mapping rule: error|warning")
    s.add_argument("--min-size", type=_positive_int, default=DEFAULT_MIN_SIZE, metavar="PX",
                   help=f"minimum image width and height (default {DEFAULT_MIN_SIZE})")  # fmt: skip
    s.add_argument("--hash-threshold", type=int, default=DEFAULT_HASH_THRESHOLD, metavar="D",
                   help=f"near-duplicate dHash distance (default {DEFAULT_HASH_THRESHOLD}; <0 disables)")  # fmt: skip
    s.add_argument("--non-binary-tolerance", type=float, default=DEFAULT_NON_BINARY_TOLERANCE, metavar="F",
                   help=f"max fraction of mid-grey mask pixels (default {DEFAULT_NON_BINARY_TOLERANCE})")  # fmt: skip
    s.add_argument("--workers", type=_positive_int, metavar="N", help="decoding processes (default: CPU count)")
    s.set_defaults(func=_cmd_validate)

    s = data_subparsers.add_parser("profile", help="write a dataset profile (intensity, size, foreground statistics)")
    s.add_argument("data", metavar="DIR", help="dataset folder (images/ + masks/)")
    s.add_argument("--out", required=True, metavar="P.json", help="profile JSON to write")
    s.add_argument("--workers", type=_positive_int, metavar="N", help="decoding processes (default: CPU count)")
    s.set_defaults(func=_cmd_profile)

    s = data_subparsers.add_parser("drift", help="compare a dataset with a reference profile (JSON + Markdown report)")
    s.add_argument("data", metavar="DIR", help="dataset folder (images/ + masks/)")
    s.add_argument("--reference", required=True, metavar="P.json", help="reference profile (lgmsnet data profile)")
    s.add_argument("--out", required=True, metavar="REPORT",
                   help="X.json/X.md writes X.json + X.md; a folder receives drift.json + drift.md")  # fmt: skip
    s.add_argument("--workers", type=_positive_int, metavar="N", help="decoding processes (default: CPU count)")
    s.add_argument("--fail-on-drift", action="store_true", help="exit 1 when any statistic drifted")
    s.set_defaults(func=_cmd_drift)

