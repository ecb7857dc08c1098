"""The oil-temperature workflow in Python: the same IR as ``workflow.yaml``.

    amml run examples/oil_temperature/workflow.py -p model=nlinear
"""

from amml import Workflow, ops

with Workflow(
    "oil-temperature",
    params={"csv": "ETTh1.csv", "db": "sqlite:///.amml/ett.db",
            "model": "dlinear", "setting": "S", "lookback": 336, "horizon": 96, "epochs": 10,
            "lr": 0.005, "batch_size": 32, "lr_schedule": "halve", "patience": 3},
) as wf:
    p = wf.params
    csv = ops.source.csv(path=p.csv, time="date")
    load = ops.sink.sql(csv, url=p.db, table="etth1")
    extracted = ops.source.sql(wait_for=load, url=p.db, table="etth1", time="date")
    splits = ops.split(extracted, mode="ett", overlap=p.lookback)
    train_scaled = ops.scale(splits["train"], method="zscore")
    val_scaled = ops.scale(splits["val"], scaler=train_scaled["scaler"])
    test_scaled = ops.scale(splits["test"], scaler=train_scaled["scaler"])
    model = ops.train(train_scaled, val_scaled, model=p.model, setting=p.setting, target="OT",
                      lookback=p.lookback, horizon=p.horizon, epochs=p.epochs, lr=p.lr,
                      batch_size=p.batch_size, lr_schedule=p.lr_schedule,
                      patience=p.patience)
    evaluation = ops.evaluate(model, test_scaled, train_scaled["scaler"], target="OT")
    registered = ops.register(model, evaluation["metrics"], train_scaled["scaler"], test_scaled,
                              name="oil-temperature", aliases=["challenger"])
