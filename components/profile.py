"""Dataset profiles and drift between two of them (issue 4, part 4).

A :class:`Profile` summarises one dataset version as JSON-serialisable distributions, each a histogram over
FIXED bin edges (so that two profiles are always comparable) plus its mean, standard deviation and quantiles:

* ``pixel_intensity.{r,g,b}``: pixel values per channel (32 bins of 8 grey levels); every image weighs the
  same (per-image histograms are normalised before they are averaged), grey images count as R = G = B;
* ``image_mean.{r,g,b}`` and ``image_std.{r,g,b}``: the per-image channel mean and standard deviation;
* ``width``, ``height`` (pixels) and ``aspect_ratio`` (width / height, log-spaced bins);
* ``foreground_fraction``: fraction of mask pixels with grey > 127.

:func:`compare_profiles` scores every distribution of a candidate against a reference with

* the population stability index, ``PSI = sum((c - r) * ln(c / r))`` over the bins (fractions smoothed by
  ``1e-4``): < 0.1 stable, 0.1-0.25 moderate, > 0.25 a significant shift (the usual credit-scoring reading);
* the Kolmogorov-Smirnov statistic (largest gap between the two cumulative histograms; bin resolution);
* the Wasserstein-1 distance (area between the cumulative histograms, in the statistic's unit);
* the relative change of the mean.

A statistic is marked ``"drift"`` when PSI, KS or the relative change of the mean reach their threshold
(:class:`DriftThresholds`), ``"ok"`` otherwise. Reports are written as JSON and Markdown.

The statistics come from the metadata table of :func:`components.validation.build_metadata_table`, so a
profile built during validation costs no extra decoding.
"""

from __future__ import annotations

import json
import logging
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lgmsnet.fileio import atomic_write_text

if TYPE_CHECKING:  # pandas is imported at the point of use
    import pandas as pd

__all__ = [
    "CHANNELS",
    "INTENSITY_BINS",
    "DriftReport",
    "DriftStatistic",
    "DriftThresholds",
    "Distribution",
    "Profile",
    "compare_profiles",
    "load_profile",
    "profile_dataset",
    "profile_from_table",
    "write_drift_report",
    "write_profile",
]

logger = logging.getLogger(__name__)

PROFILE_FORMAT_VERSION = 1
CHANNELS: tuple[str, str, str] = ("r", "g", "b")
INTENSITY_BINS = 32  # pixel histograms: 32 bins of 8 grey levels
_QUANTILES: tuple[float, ...] = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
_PSI_EPSILON = 1e-4

# Fixed bin edges per statistic family: profiles of any two datasets share them.
_EDGES: dict[str, list[float]] = {
    "pixel_intensity": [float(v) for v in range(0, 257, 256 // INTENSITY_BINS)],
    "image_mean": [float(v) for v in range(0, 257, 8)],
    "image_std": [float(v) for v in range(0, 129, 4)],
    "size": [0.0, 64, 128, 192, 256, 320, 384, 448, 512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048, 3072, 4096,
             8192],
    "aspect_ratio": [round(float(v), 6) for v in np.geomspace(0.25, 4.0, 25)],
    "foreground_fraction": [round(float(v), 6) for v in np.linspace(0.0, 1.0, 21)],
}


@dataclass
class Distribution:
    """One statistic of a dataset as a histogram over fixed edges, plus summary numbers.

    Attributes:
        edges: bin edges (``len(fractions) + 1`` values, increasing); values outside are clipped into the end bins.
        fractions: share of the population in each bin (sums to 1; all zero when ``n == 0``).
        n: number of images that contributed.
        mean: mean value (None when ``n == 0``).
        std: standard deviation (None when ``n == 0``).
        quantiles: ``"p0"``, ``"p5"``, ``"p25"``, ``"p50"``, ``"p75"``, ``"p95"``, ``"p100"`` (per-image
            statistics only; empty for pixel histograms).
    """

    edges: list[float]
    fractions: list[float]
    n: int
    mean: float | None = None
    std: float | None = None
    quantiles: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_values(cls, values: Sequence[float] | np.ndarray, edges: Sequence[float]) -> Distribution:
        """Histogram of raw per-image values (NaN values are dropped)."""
        array = np.asarray(values, dtype=np.float64)
        array = array[np.isfinite(array)]
        edge_array = np.asarray(edges, dtype=np.float64)
        if array.size == 0:
            return cls(edges=list(map(float, edges)), fractions=[0.0] * (len(edges) - 1), n=0)
        clipped = np.clip(array, edge_array[0], edge_array[-1])
        counts, _ = np.histogram(clipped, bins=edge_array)
        return cls(
            edges=[float(e) for e in edge_array],
            fractions=[float(c) for c in counts / array.size],
            n=int(array.size),
            mean=float(array.mean()),
            std=float(array.std()),
            quantiles={f"p{round(q * 100)}": float(np.quantile(array, q)) for q in _QUANTILES},
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Distribution:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: missing keys or ``edges``/``fractions`` of inconsistent lengths.
        """
        missing = [k for k in ("edges", "fractions", "n") if k not in data]
        if missing:
            raise ValueError(f"profile distribution lacks key(s) {missing}; rebuild the profile with profile_dataset.")
        dist = cls(
            edges=[float(e) for e in data["edges"]],
            fractions=[float(f) for f in data["fractions"]],
            n=int(data["n"]),
            mean=None if data.get("mean") is None else float(data["mean"]),
            std=None if data.get("std") is None else float(data["std"]),
            quantiles={str(k): float(v) for k, v in dict(data.get("quantiles") or {}).items()},
        )
        if len(dist.edges) != len(dist.fractions) + 1:
            raise ValueError(
                f"profile distribution has {len(dist.edges)} edges for {len(dist.fractions)} bins; expected bins + 1 "
                "edges. The profile file is corrupt; rebuild it with profile_dataset."
            )
        return dist


@dataclass
class Profile:
    """Statistical summary of one dataset version (see the module docstring for the statistics).

    Attributes:
        n: number of image/mask pairs in the table.
        n_profiled: pairs whose image and mask decoded (the others are left out of every distribution).
        distributions: statistic name -> :class:`Distribution`.
        source: where it came from (dataset folder, or ``"<table>"``).
        created: ISO-8601 UTC time of creation.
        format_version: profile schema version.
    """

    n: int
    n_profiled: int
    distributions: dict[str, Distribution]
    source: str = ""
    created: str = ""
    format_version: int = PROFILE_FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (the profile file's content)."""
        return {
            "format_version": self.format_version,
            "source": self.source,
            "created": self.created,
            "n": self.n,
            "n_profiled": self.n_profiled,
            "distributions": {name: d.to_dict() for name, d in self.distributions.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: unsupported ``format_version`` or missing keys.
        """
        version = int(data.get("format_version", -1))
        if version != PROFILE_FORMAT_VERSION:
            raise ValueError(
                f"profile format_version {data.get('format_version')!r} is not supported (this code reads "
                f"{PROFILE_FORMAT_VERSION}); rebuild the profile with `lgmsnet data profile DIR --out P.json`."
            )
        missing = [k for k in ("n", "distributions") if k not in data]
        if missing:
            raise ValueError(f"profile lacks key(s) {missing}; rebuild it with `lgmsnet data profile`.")
        return cls(
            n=int(data["n"]),
            n_profiled=int(data.get("n_profiled", data["n"])),
            distributions={str(k): Distribution.from_dict(v) for k, v in dict(data["distributions"]).items()},
            source=str(data.get("source", "")),
            created=str(data.get("created", "")),
            format_version=version,
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def profile_from_table(table: pd.DataFrame, source: str = "<table>") -> Profile:
    """Profile a metadata table from :func:`components.validation.build_metadata_table`.

    Rows whose image or mask did not decode are left out. The pixel-intensity histograms need the table's
    ``intensity_hist`` column (absent, e.g. in a table read back from CSV, they are skipped).

    Args:
        table: the metadata table.
        source: label stored in the profile.

    Returns:
        The profile.

    Raises:
        ValueError: a required column is missing.
    """
    required = ["width", "height", "foreground_fraction", "decodable"]
    required += [f"{kind}_{c}" for kind in ("mean", "std") for c in CHANNELS]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(
            f"metadata table lacks column(s) {missing}; build it with components.validation.build_metadata_table."
        )
    ok = table[table["decodable"].eq(True)]
    dists: dict[str, Distribution] = {}
    if "intensity_hist" in ok.columns:
        hists = [np.asarray(h, dtype=np.float64) for h in ok["intensity_hist"] if h is not None]
        stacked = np.stack(hists) if hists else np.zeros((0, len(CHANNELS), INTENSITY_BINS))
        for i, channel in enumerate(CHANNELS):
            mean_hist = stacked[:, i, :].mean(axis=0) if len(hists) else np.zeros(INTENSITY_BINS)
            image_means = ok[f"mean_{channel}"].to_numpy(dtype=np.float64)
            dists[f"pixel_intensity.{channel}"] = Distribution(
                edges=list(_EDGES["pixel_intensity"]),
                fractions=[float(v) for v in mean_hist],
                n=len(hists),
                mean=float(image_means.mean()) if len(hists) else None,
                std=None,
                quantiles={},
            )
    for kind in ("mean", "std"):
        for channel in CHANNELS:
            dists[f"image_{kind}.{channel}"] = Distribution.from_values(
                ok[f"{kind}_{channel}"].to_numpy(dtype=np.float64), _EDGES[f"image_{kind}"]
            )
    width = ok["width"].to_numpy(dtype=np.float64)
    height = ok["height"].to_numpy(dtype=np.float64)
    dists["width"] = Distribution.from_values(width, _EDGES["size"])
    dists["height"] = Distribution.from_values(height, _EDGES["size"])
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = np.where(height > 0, width / np.where(height > 0, height, 1.0), np.nan)
    dists["aspect_ratio"] = Distribution.from_values(aspect, _EDGES["aspect_ratio"])
    dists["foreground_fraction"] = Distribution.from_values(
        ok["foreground_fraction"].to_numpy(dtype=np.float64), _EDGES["foreground_fraction"]
    )
    return Profile(n=len(table), n_profiled=len(ok), distributions=dists, source=source, created=_now())


def profile_dataset(source: str | os.PathLike[str] | pd.DataFrame, *, workers: int | None = None) -> Profile:
    """Profile a dataset folder (decoding every pair once) or an existing metadata table.

    Args:
        source: dataset folder (``images/`` + ``masks/``) or a table from
            :func:`components.validation.build_metadata_table`.
        workers: decoding processes for a folder (default ``os.cpu_count()``).

    Returns:
        The profile.

    Raises:
        lgmsnet.data.DatasetError: the folder does not exist or lacks ``images/``/``masks/``.
        ValueError: the table lacks a required column.
    """
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        return profile_from_table(source)
    from components.validation import build_metadata_table  # lazy: validation imports this module

    table = build_metadata_table(source, workers=workers)
    return profile_from_table(table, source=str(source))


def write_profile(profile: Profile, path: str | os.PathLike[str]) -> Path:
    """Write a profile as JSON (atomically: temporary file + rename).

    Returns:
        The written path.
    """
    return atomic_write_text(Path(path), json.dumps(profile.to_dict(), indent=1) + "\n")


def load_profile(path: str | os.PathLike[str]) -> Profile:
    """Read a profile written by :func:`write_profile`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not valid JSON or not a profile.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"reference profile {path} does not exist; create one with `lgmsnet data profile DIR --out {path}`."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"reference profile {path} is not valid JSON ({exc}); rebuild it with `lgmsnet data profile`."
        ) from exc
    if not isinstance(data, dict):
        raise ValueError(f"reference profile {path} holds a {type(data).__name__}; expected a JSON object.")
    try:
        return Profile.from_dict(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


# ----------------------------------------------------------------------------------------------- drift


@dataclass(frozen=True)
class DriftThresholds:
    """When a statistic counts as drifted (any criterion reached).

    Attributes:
        psi: population stability index (0.25: the usual "significant shift").
        ks: Kolmogorov-Smirnov statistic (largest CDF gap, 0..1).
        relative_change: ``|candidate mean - reference mean| / |reference mean|``.
    """

    psi: float = 0.25
    ks: float = 0.3
    relative_change: float = 0.1

    def __post_init__(self) -> None:
        for name in ("psi", "ks", "relative_change"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"DriftThresholds.{name} must be a positive number, got {value!r}.")


@dataclass
class DriftStatistic:
    """How one distribution moved between the reference and the candidate.

    Attributes:
        name: statistic name (e.g. ``"image_mean.r"``).
        reference_mean: mean in the reference (None when unknown).
        candidate_mean: mean in the candidate.
        relative_change: ``(candidate - reference) / |reference|`` of the means (None when undefined).
        psi: population stability index.
        ks: Kolmogorov-Smirnov statistic (bin resolution).
        wasserstein: Wasserstein-1 distance in the statistic's unit (bin resolution).
        status: ``"drift"`` or ``"ok"`` (``"n/a"`` when one side has no data).
        reasons: the criteria that were reached, e.g. ``["psi 1.20 >= 0.25"]``.
    """

    name: str
    reference_mean: float | None
    candidate_mean: float | None
    relative_change: float | None
    psi: float | None
    ks: float | None
    wasserstein: float | None
    status: str
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return asdict(self)


@dataclass
class DriftReport:
    """Outcome of :func:`compare_profiles`.

    Attributes:
        statistics: one entry per distribution present in both profiles, in the reference's order.
        thresholds: the thresholds used.
        reference_source: the reference profile's source.
        candidate_source: the candidate profile's source.
        reference_n: pairs profiled in the reference.
        candidate_n: pairs profiled in the candidate.
        skipped: statistics present in only one profile.
    """

    statistics: list[DriftStatistic]
    thresholds: DriftThresholds
    reference_source: str
    candidate_source: str
    reference_n: int
    candidate_n: int
    skipped: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> list[DriftStatistic]:
        """Statistics whose status is ``"drift"``."""
        return [s for s in self.statistics if s.status == "drift"]

    @property
    def has_drift(self) -> bool:
        """True when at least one statistic drifted."""
        return bool(self.drifted)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return {
            "has_drift": self.has_drift,
            "drifted": [s.name for s in self.drifted],
            "reference": {"source": self.reference_source, "n": self.reference_n},
            "candidate": {"source": self.candidate_source, "n": self.candidate_n},
            "thresholds": asdict(self.thresholds),
            "statistics": [s.to_dict() for s in self.statistics],
            "skipped": list(self.skipped),
        }

    def to_markdown(self) -> str:
        """A Markdown table of every statistic, drifted ones first marked **drift**."""

        def num(value: float | None, fmt: str = "{:.3g}") -> str:
            return "–" if value is None else fmt.format(value)

        t = self.thresholds
        lines = [
            "# Drift report",
            "",
            f"- reference: `{self.reference_source}` ({self.reference_n} pairs)",
            f"- candidate: `{self.candidate_source}` ({self.candidate_n} pairs)",
            f"- drift when PSI >= {t.psi:g}, KS >= {t.ks:g} or |relative change of the mean| >= "
            f"{t.relative_change:.0%}",
            f"- result: **{len(self.drifted)} of {len(self.statistics)} statistics drifted**"
            + (f" ({', '.join(s.name for s in self.drifted)})" if self.drifted else ""),
            "",
            "| statistic | reference mean | candidate mean | change | PSI | KS | W1 | status |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for s in self.statistics:
            status = f"**{s.status}**" if s.status == "drift" else s.status
            lines.append(
                f"| {s.name} | {num(s.reference_mean)} | {num(s.candidate_mean)} | "
                f"{num(s.relative_change, '{:+.1%}')} | {num(s.psi)} | {num(s.ks)} | {num(s.wasserstein)} | {status} |"
            )
        if self.skipped:
            lines += ["", f"Not compared (present in one profile only): {', '.join(self.skipped)}."]
        return "\n".join(lines) + "\n"


def _psi(reference: np.ndarray, candidate: np.ndarray) -> float:
    r = reference + _PSI_EPSILON
    c = candidate + _PSI_EPSILON
    r, c = r / r.sum(), c / c.sum()
    return float(np.sum((c - r) * np.log(c / r)))


def _compare(name: str, ref: Distribution, cand: Distribution, thresholds: DriftThresholds) -> DriftStatistic:
    if not np.allclose(ref.edges, cand.edges):
        raise ValueError(
            f"statistic {name!r} has different bin edges in the two profiles (format changed?); rebuild the "
            "reference profile with the current code (`lgmsnet data profile`)."
        )
    rel = None
    if ref.mean is not None and cand.mean is not None and abs(ref.mean) > 1e-12:
        rel = (cand.mean - ref.mean) / abs(ref.mean)
    if ref.n == 0 or cand.n == 0:
        return DriftStatistic(name, ref.mean, cand.mean, rel, None, None, None, "n/a", ["no data on one side"])
    r = np.asarray(ref.fractions, dtype=np.float64)
    c = np.asarray(cand.fractions, dtype=np.float64)
    r_cdf, c_cdf = np.cumsum(r) / max(r.sum(), 1e-12), np.cumsum(c) / max(c.sum(), 1e-12)
    widths = np.diff(np.asarray(ref.edges, dtype=np.float64))
    psi = _psi(r, c)
    ks = float(np.max(np.abs(r_cdf - c_cdf)))
    w1 = float(np.sum(np.abs(r_cdf - c_cdf) * widths))
    reasons = []
    if psi >= thresholds.psi:
        reasons.append(f"PSI {psi:.3g} >= {thresholds.psi:g}")
    if ks >= thresholds.ks:
        reasons.append(f"KS {ks:.3g} >= {thresholds.ks:g}")
    if rel is not None and abs(rel) >= thresholds.relative_change:
        reasons.append(f"mean {ref.mean:.4g} -> {cand.mean:.4g} ({rel:+.1%})")
    return DriftStatistic(
        name=name,
        reference_mean=ref.mean,
        candidate_mean=cand.mean,
        relative_change=rel,
        psi=psi,
        ks=ks,
        wasserstein=w1,
        status="drift" if reasons else "ok",
        reasons=reasons,
    )


def compare_profiles(
    reference: Profile, candidate: Profile, thresholds: DriftThresholds | None = None
) -> DriftReport:
    """Score how every distribution of ``candidate`` moved away from ``reference``.

    Args:
        reference: the profile of the data the model was trained/validated on.
        candidate: the profile of the new data.
        thresholds: drift thresholds (default :class:`DriftThresholds`).

    Returns:
        The drift report (see :class:`DriftStatistic` for the metrics).

    Raises:
        ValueError: a statistic has different bin edges in the two profiles.
    """
    thresholds = thresholds or DriftThresholds()
    stats = [
        _compare(name, dist, candidate.distributions[name], thresholds)
        for name, dist in reference.distributions.items()
        if name in candidate.distributions
    ]
    skipped = sorted(set(reference.distributions) ^ set(candidate.distributions))
    report = DriftReport(
        statistics=stats,
        thresholds=thresholds,
        reference_source=reference.source,
        candidate_source=candidate.source,
        reference_n=reference.n_profiled,
        candidate_n=candidate.n_profiled,
        skipped=skipped,
    )
    logger.info("Drift: %d of %d statistics drifted", len(report.drifted), len(stats))
    return report


def write_drift_report(report: DriftReport, out: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write a drift report as JSON and Markdown (each atomically).

    Args:
        report: the report.
        out: ``X.json`` or ``X.md`` writes ``X.json`` and ``X.md``; any other path is a folder that receives
            ``drift.json`` and ``drift.md``.

    Returns:
        ``(json_path, markdown_path)``.
    """
    out = Path(out)
    base = out.with_suffix("") if out.suffix.lower() in (".json", ".md") else out / "drift"
    json_text = json.dumps(_finite(report.to_dict()), indent=1) + "\n"
    json_path = atomic_write_text(base.with_name(base.name + ".json"), json_text)
    md_path = atomic_write_text(base.with_name(base.name + ".md"), report.to_markdown())
    return json_path, md_path


def _finite(value: Any) -> Any:
    """Replace non-finite floats by None so the JSON is standard."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
