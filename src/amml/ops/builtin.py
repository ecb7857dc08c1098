"""The built-in ops by name, with the module that defines each.

Looking an op up imports only its module (``amml validate`` of a workflow pays for the ops it
uses, not for every source's driver); listing all of them imports every module. Adding a
built-in op adds one line here; ``tests/test_plugins.py`` checks this table against what the
modules define.
"""

CATALOG: dict[str, str] = {
    "source.synthetic": "amml.ops.sources.synthetic",
    "source.csv": "amml.ops.sources.files",
    "source.parquet": "amml.ops.sources.files",
    "source.sql": "amml.ops.sources.sql",
    "source.influxdb": "amml.ops.sources.influx",
    "source.redis": "amml.ops.sources.redis.op",
    "source.mqtt": "amml.ops.sources.mqtt",
    "source.logs": "amml.ops.sources.logs.op",
    "source.prediction_log": "amml.ops.sources.prediction_log",
    "source.labels": "amml.ops.sources.labels",
    "preprocess": "amml.ops.transforms.preprocess",
    "resample": "amml.ops.transforms.resample",
    "align": "amml.ops.transforms.align",
    "fill": "amml.ops.transforms.fill",
    "clip": "amml.ops.transforms.clip",
    "scale": "amml.ops.transforms.scale",
    "difference": "amml.ops.transforms.difference",
    "features": "amml.ops.transforms.features",
    "windows": "amml.ops.transforms.windows",
    "select": "amml.ops.transforms.select",
    "split": "amml.ops.transforms.split",
    "sink.sql": "amml.ops.sinks.sql",
    "train": "amml.ops.models.train",
    "evaluate": "amml.ops.models.train",
    "register": "amml.ops.models.register",
    "detect.zscore": "amml.ops.detectors.zscore",
    "detect": "amml.ops.detectors.detect",
    "report.anomalies": "amml.ops.detectors.plot",
    "explain": "amml.ops.explain.op",
}

#: Every module that defines built-in ops, in catalog order.
MODULES: tuple[str, ...] = tuple(dict.fromkeys(CATALOG.values()))
