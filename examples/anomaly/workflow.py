"""The anomaly-detection workflow in Python: the same IR as ``workflow.yaml``.

    amml run examples/anomaly/workflow.py
    amml run examples/anomaly/workflow.py -p detector=seasonal
"""

from amml import Workflow, ops

with Workflow(
    "anomaly-detection",
    params={"periods": 3000, "seed": 7, "detector": "rolling_mad", "reference": 0.3},
    description="Detect anomalies in generated sensor data and plot the alarms against the "
                "labels.",
) as wf:
    p = wf.params
    sensors = ops.source.synthetic(periods=p.periods, seed=p.seed, anomalies=12)
    clean = ops.preprocess(sensors, fill="linear", scale="zscore", fit_fraction=p.reference,
                           exclude=["is_anomaly"])
    anomalies = ops.detect(clean, detector=p.detector, label="is_anomaly",
                           threshold={"kind": "quantile", "quantile": 0.995,
                                      "reference": p.reference, "min_gap": 12})
    plot = ops.report.anomalies(anomalies, anomalies["report"], label="is_anomaly")
