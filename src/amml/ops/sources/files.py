"""``source.csv`` and ``source.parquet``: a time-indexed table from a file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from amml._exceptions import OpError
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register


class FileSourceConfig(OpConfig):
    path: str
    time: str | None = None
    columns: list[str] | None = None
    tz: str | None = None


def _index_by_time(frame: pd.DataFrame, config: FileSourceConfig, ctx: StepContext
                   ) -> pd.DataFrame:
    missing = [c for c in (config.columns or []) if c not in frame.columns]
    if missing:
        raise OpError(f"{config.path}: columns {missing} not found "
                      f"(columns: {', '.join(map(str, frame.columns))})")
    if config.time is not None:
        if config.time not in frame.columns:
            raise OpError(f"{config.path}: time column '{config.time}' not found "
                          f"(columns: {', '.join(map(str, frame.columns))})")
        stamps = pd.to_datetime(frame[config.time], errors="coerce", utc=config.tz is not None)
        bad = int(stamps.isna().sum())
        if bad:
            examples = frame.loc[stamps.isna(), config.time].head(3).tolist()
            raise OpError(f"{config.path}: {bad} unparseable timestamps in "
                          f"'{config.time}', e.g. {examples}")
        if config.tz is not None:
            stamps = stamps.dt.tz_convert(config.tz)
        frame = frame.drop(columns=[config.time]).set_index(pd.DatetimeIndex(stamps,
                                                                            name=config.time))
    if config.columns:
        frame = frame[config.columns]
    ctx.log_metric("rows", len(frame))
    return frame


class _FileSource(Op):
    outputs = {"out": "table"}
    Config = FileSourceConfig
    format_name = ""

    def read(self, path: Path) -> pd.DataFrame:
        raise NotImplementedError

    def run(self, ctx: StepContext) -> pd.DataFrame:
        path = Path(self.config.path)
        if not path.exists():
            raise OpError(f"{self.format_name} file not found: {path}")
        return _index_by_time(self.read(path), self.config, ctx)


@register
class CsvSource(_FileSource):
    """Read a CSV file; ``time`` names the timestamp column that becomes the index."""

    name = "source.csv"
    format_name = "CSV"

    def read(self, path: Path) -> pd.DataFrame:
        return pd.read_csv(path)


@register
class ParquetSource(_FileSource):
    """Read a Parquet file; ``time`` names the timestamp column that becomes the index."""

    name = "source.parquet"
    format_name = "Parquet"

    def read(self, path: Path) -> pd.DataFrame:
        frame = pd.read_parquet(path)
        if self.config.time and self.config.time not in frame.columns \
                and frame.index.name == self.config.time:
            frame = frame.reset_index()
        return frame
