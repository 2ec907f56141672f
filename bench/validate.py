"""Data-validation benchmark: ``validate_dataset`` on the shared Kvasir-SEG, and the Kvasir-SEG → CVC-ClinicDB drift.

Run ``python bench/validate.py`` (``--help`` for options). Datasets are read from ``$LGMSNET_SHARED_DATA``
(default ``<repo>/../shared/data``). Steps:

1. a split manifest for Kvasir-SEG (``make_splits``; not timed);
2. one untimed warm-up run (imports great_expectations, ~4 s, reported separately as the cold start);
3. ``--repeats`` timed runs of ``validate_dataset(kvasir, manifest=M, target_dir=cvc)``: median with min–max of
   the total, images/s, and the breakdown metadata table / GX suite + data docs / extra checks / reports;
4. the drift report of CVC-ClinicDB against a Kvasir-SEG reference profile (Markdown).

The numbers are printed as a table and as one JSON line (``BENCH_JSON {...}``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from components.profile import compare_profiles, profile_dataset  # noqa: E402
from components.validation import validate_dataset  # noqa: E402
from lgmsnet.data import make_splits, write_manifest  # noqa: E402

STAGES = ("metadata_table", "gx", "checks", "reports")


def _shared_data() -> Path:
    return Path(os.environ.get("LGMSNET_SHARED_DATA", REPO.parent / "shared" / "data"))


def _median_range(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} s  ({min(values):.2f}–{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=None, help="dataset to validate (default: shared kvasir-seg)")
    p.add_argument("--target", type=Path, default=None, help="zero-shot target (default: shared cvc-clinicdb)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: CPU count)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    shared = _shared_data()
    data = args.data or shared / "kvasir-seg"
    target = args.target or shared / "cvc-clinicdb"
    for folder in (data, target):
        if not (folder / "images").is_dir():
            print(f"bench/validate.py: error: {folder} has no images/; set LGMSNET_SHARED_DATA", file=sys.stderr)
            return 1

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        manifest = write_manifest(make_splits(data, seed=0), Path(tmp) / "splits.json")
        split_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        warm = validate_dataset(data, manifest=manifest, target_dir=target, report_dir=Path(tmp) / "warm",
                                workers=args.workers)  # fmt: skip
        cold_s = time.perf_counter() - t0

        totals: list[float] = []
        stages: dict[str, list[float]] = {s: [] for s in STAGES}
        for i in range(args.repeats):
            res = validate_dataset(data, manifest=manifest, target_dir=target, report_dir=Path(tmp) / f"run{i}",
                                   workers=args.workers)  # fmt: skip
            totals.append(res.seconds)
            for stage in STAGES:
                stages[stage].append(res.timings.get(stage, 0.0))
        n = warm.n_items

        t0 = time.perf_counter()
        reference = profile_dataset(data, workers=args.workers)
        candidate = profile_dataset(target, workers=args.workers)
        profile_s = time.perf_counter() - t0
        drift = compare_profiles(reference, candidate)

    median = statistics.median(totals)
    print(f"validate_dataset({data.name}, manifest, target_dir={target.name}): {n} pairs, "
          f"{os.cpu_count()} CPU(s), workers={args.workers or os.cpu_count()}")  # fmt: skip
    print(f"  result: passed={warm.passed}, {len(warm.errors)} error(s), {len(warm.warnings)} warning(s)")
    cold_stages = ", ".join(f"{k} {v:.2f} s" for k, v in warm.timings.items())
    print(f"  make_splits (untimed setup): {split_s:.2f} s; cold first run (GX import): {cold_s:.2f} s ({cold_stages})")
    print(f"  total          {_median_range(totals)}   {n / median:.1f} images/s (median of {args.repeats})")
    for stage in STAGES:
        print(f"  - {stage:<13}{_median_range(stages[stage])}")
    print(f"  profiles of both datasets: {profile_s:.2f} s")
    print()
    print(drift.to_markdown())
    record = {
        "n": n,
        "cpus": os.cpu_count(),
        "repeats": args.repeats,
        "total_s": {"median": median, "min": min(totals), "max": max(totals)},
        "images_per_s": n / median,
        "stages_median_s": {s: statistics.median(v) for s, v in stages.items()},
        "cold_first_run_s": cold_s,
        "passed": warm.passed,
        "drifted": [s.name for s in drift.drifted],
    }
    print("BENCH_JSON " + json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
