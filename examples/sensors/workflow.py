"""The sensor-monitoring workflow in Python: the same IR as ``workflow.yaml``.

    amml run examples/sensors/workflow.py
    amml export examples/sensors/workflow.py     # prints the YAML form
"""

from amml import Workflow, ops

with Workflow(
    "sensor-monitoring",
    params={"periods": 4000, "seed": 7, "target": "temperature", "horizon": 24,
            "lookback": 96},
    description="Forecast transformer temperature and detect anomalies in generated sensor data.",
) as wf:
    p = wf.params
    sensors = ops.source.synthetic(periods=p.periods, seed=p.seed, anomalies=12)
    clean = ops.preprocess(sensors, fill="linear", scale="zscore", fit_fraction=0.7,
                           exclude=["is_anomaly"])
    splits = ops.split(clean, train=0.7, val=0.1, overlap=p.lookback)
    model = ops.train(splits["train"], splits["val"], model="linear", target=p.target,
                      lookback=p.lookback, horizon=p.horizon)
    baseline = ops.train(splits["train"], splits["val"], model="seasonal_naive",
                         target=p.target, lookback=p.lookback, horizon=p.horizon)
    evaluation = ops.evaluate(model, splits["test"], target=p.target)
    baseline_evaluation = ops.evaluate(baseline, splits["test"], target=p.target)
    anomalies = ops.detect.zscore(clean, window=48, threshold=4.5, label="is_anomaly")
