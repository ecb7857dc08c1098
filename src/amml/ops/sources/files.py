"""``source.csv`` and ``source.parquet``: a time-indexed table from a file.

The step's cache key includes the file's size and modification time, so an edited file is
read again (and if its bytes did not change, nothing downstream re-runs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register
from amml.ops.sources.quality import finish_table


class FileSourceConfig(OpConfig):
    path: str
    time: str | None = None
    columns: list[str] | None = None
    tz: str | None = None
    dtype: dict[str, str] | None = None
    on_bad_rows: Literal["error", "quarantine"] = "error"
    dedupe: Literal["error", "last", "first", "mean"] = "error"


class _FileSource(Op):
    outputs = {"out": "table", "report": "json"}
    Config = FileSourceConfig
    format_name = ""

    def read(self, path: Path) -> pd.DataFrame:
        raise NotImplementedError

    def source_state(self) -> str | None:
        try:
            stat = os.stat(self.config.path)
        except OSError:
            return "missing"
        return json.dumps([stat.st_size, stat.st_mtime_ns])

    def run(self, ctx: StepContext) -> dict[str, Any]:
        c = self.config
        path = Path(c.path)
        if not path.exists():
            raise OpError(f"{self.format_name} file not found: {path}")
        frame = self.read(path)
        if c.dtype:
            frame = frame.astype(c.dtype)
        table, report = finish_table(frame, time=c.time, on_bad_rows=c.on_bad_rows,
                                     source=str(path), tz=c.tz, columns=c.columns,
                                     dedupe=c.dedupe, numeric=c.time is not None)
        ctx.log_metrics({"rows": len(table), "bad_rows": report["bad_rows"]})
        return {"out": table, "report": report}


@register
class CsvSource(_FileSource):
    """Read a CSV file; ``time`` names the timestamp column that becomes the index."""

    name = "source.csv"
    format_name = "CSV"

    def read(self, path: Path) -> pd.DataFrame:
        try:
            return pd.read_csv(path)
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise OpError(f"{path}: not a readable CSV file: {exc}") from None


@register
class ParquetSource(_FileSource):
    """Read a Parquet file; ``time`` names the timestamp column that becomes the index."""

    name = "source.parquet"
    format_name = "Parquet"

    def read(self, path: Path) -> pd.DataFrame:
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise OpError(f"{path}: not a readable Parquet file: {exc}") from None
        if self.config.time and self.config.time not in frame.columns \
                and frame.index.name == self.config.time:
            frame = frame.reset_index()
        return frame
