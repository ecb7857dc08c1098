"""``source.csv`` and ``source.parquet``: a time-indexed table from a file.

The step's cache key includes the file's size and modification time, so an edited file is
read again (and if its bytes did not change, nothing downstream re-runs).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Literal

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register
from amml.ops.sources.quality import finish_table

# pandas reads these cells as missing; its default list also holds the spellings of NaN, which
# are kept as text here so that the quality check counts them as non-finite values instead
MISSING_TEXT = ["", "#N/A", "#N/A N/A", "#NA", "<NA>", "N/A", "NA", "NULL", "None", "n/a",
                "null"]


class FileSourceConfig(OpConfig):
    path: str
    time: str | None = None
    columns: list[str] | None = None
    tz: str | None = None
    dtype: dict[str, str] | None = None
    on_bad_rows: Literal["error", "quarantine"] = "error"
    dedupe: Literal["error", "last", "first", "mean"] = "error"
    #: how 01/02/2024 reads (true: 1 February); unset, dates whose order matters are an error
    dayfirst: bool | None = None
    #: one strftime format for every timestamp (e.g. '%d/%m/%Y %H:%M'); overrides dayfirst
    time_format: str | None = None
    #: a CSV header naming a column twice: an error, or rename the later ones (v, v.1, ...)
    duplicate_headers: Literal["error", "rename"] = "error"


class _FileSource(Op):
    outputs = {"out": "table", "report": "json"}
    Config = FileSourceConfig
    format_name = ""
    #: a relative path is the workflow file's folder's (amml.ops.paths)
    path_fields = {"path": "file"}

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
        # absolute here when run from a workflow (the planner resolved it against the
        # workflow's folder); made absolute anyway so the message says where it looked
        path = Path(c.path).expanduser().absolute()
        if not path.exists():
            raise OpError(f"{self.format_name} file not found: {path}{ctx.param_hint('path')}")
        frame = self.read(path)
        if c.dtype:
            frame = frame.astype(c.dtype)
        table, report = finish_table(frame, time=c.time, on_bad_rows=c.on_bad_rows,
                                     source=str(path), tz=c.tz, columns=c.columns,
                                     dedupe=c.dedupe, numeric=c.time is not None,
                                     dayfirst=c.dayfirst, time_format=c.time_format)
        ctx.log_metrics({"rows": len(table), "bad_rows": report["bad_rows"]})
        return {"out": table, "report": report}


@register
class CsvSource(_FileSource):
    """Read a CSV file; ``time`` names the timestamp column that becomes the index."""

    name = "source.csv"
    format_name = "CSV"

    def read(self, path: Path) -> pd.DataFrame:
        self._check_header(path)
        # a time series keeps "nan" as text for the quality check (see MISSING_TEXT)
        na = ({"keep_default_na": False, "na_values": MISSING_TEXT}
              if self.config.time is not None else {})
        try:
            return pd.read_csv(path, **na)
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise OpError(f"{path}: not a readable CSV file: {exc}") from None

    def _check_header(self, path: Path) -> None:
        """pandas renames a repeated header (v, v -> v, v.1): a silent guess at which column
        is meant, so it is an error unless ``duplicate_headers: rename`` asks for it."""
        if self.config.duplicate_headers == "rename":
            return
        try:
            with open(path, newline="", encoding="utf-8", errors="replace") as handle:
                header = next(csv.reader(handle), [])
        except (OSError, csv.Error):
            return  # read_csv reports an unreadable file
        seen: dict[str, list[int]] = {}
        for number, name in enumerate(header, start=1):
            seen.setdefault(name, []).append(number)
        repeated = {name: numbers for name, numbers in seen.items() if len(numbers) > 1}
        if repeated:
            where = "; ".join(f"'{name}' (columns {', '.join(map(str, numbers))})"
                              for name, numbers in repeated.items())
            raise OpError(f"{path}: the header names a column more than once: {where}; "
                          "rename them in the file, or set duplicate_headers: rename to read "
                          "them as NAME, NAME.1, ...")


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
