"""Metric writers: where training metrics go (console, CSV, JSON lines; MLflow plugs in through the same interface).

A writer receives flat ``{name: float}`` dicts with a step (the epoch). Writers are used on rank 0 only. File
writers append one row per call and flush, so a killed run leaves complete rows; on resume
:meth:`FileWriter.truncate_after` drops rows newer than the checkpoint being resumed, so the files never hold
an epoch twice.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["CSVWriter", "ConsoleWriter", "JSONLinesWriter", "MetricWriter"]

log = logging.getLogger(__name__)


@runtime_checkable
class MetricWriter(Protocol):
    """The interface every metric sink implements."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record run parameters (the flattened config) once."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record metrics for one step (epoch)."""

    def close(self) -> None:
        """Flush and release resources."""


class ConsoleWriter:
    """Metrics as log lines."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        log.debug("params: %s", dict(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        body = "  ".join(f"{k}={_fmt(v)}" for k, v in metrics.items())
        log.info("epoch %d  %s", step, body)

    def close(self) -> None:
        pass


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


class _FileWriter:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _rows(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def truncate_after(self, step: int) -> None:
        """Drop rows whose ``step`` is greater than ``step`` (used when resuming from a checkpoint)."""
        if self.path.exists():
            rows = [r for r in self._rows() if int(float(r["step"])) <= step]
            self._rewrite(rows)

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class CSVWriter(_FileWriter):
    """One CSV row per step; columns are fixed by the first row (new keys later are an error)."""

    def _rows(self) -> list[dict[str, Any]]:
        with self.path.open(newline="") as fh:
            return list(csv.DictReader(fh))

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        buf = io.StringIO()
        if rows:
            w = csv.DictWriter(buf, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(buf.getvalue())
        os.replace(tmp, self.path)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        row = {"step": step, **metrics}
        exists = self.path.exists() and self.path.stat().st_size > 0
        if exists:
            with self.path.open(newline="") as fh:
                header = next(csv.reader(fh))
            if header != list(row):
                raise ValueError(f"{self.path}: columns {list(row)} differ from the file's {header}")
        with self.path.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(row))
            if not exists:
                w.writeheader()
            w.writerow(row)
            fh.flush()
            os.fsync(fh.fileno())


class JSONLinesWriter(_FileWriter):
    """One JSON object per line per step."""

    def _rows(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        os.replace(tmp, self.path)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps({"step": step, **metrics}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
