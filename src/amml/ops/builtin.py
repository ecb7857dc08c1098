"""The built-in op modules. Adding a module of ops adds one line here."""

from amml.ops.detectors import detect, plot, zscore
from amml.ops.models import register, train
from amml.ops.sinks import sql as sql_sink
from amml.ops.sources import files, influx, logs, mqtt, redis, sql, synthetic
from amml.ops.transforms import (
    align,
    clip,
    difference,
    features,
    fill,
    preprocess,
    resample,
    scale,
    select,
    split,
    windows,
)

MODULES = (
    synthetic, files, sql, influx, redis, mqtt, logs,
    preprocess, resample, align, fill, clip, scale, difference, features, windows, select, split,
    sql_sink, train, register, zscore, detect, plot,
)
