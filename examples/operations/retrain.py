"""The retrain workflow in Python, triggers included: the same IR as ``retrain.yaml``.

    amml agent examples/operations/retrain.py --promote oil-ops --policy-window 45
"""

from amml import Workflow, ops
from amml.lang import Drift

with Workflow("oil-ops-retrain",
              params={"model": "oil-ops", "recent": "-45s", "lookback": 12, "horizon": 4},
              triggers=[Drift("oil-ops", alias="champion", wait_s=45)]) as wf:
    p = wf.params
    recent = ops.source.prediction_log(model=p.model, view="inputs", since=p.recent)
    splits = ops.split(recent)
    model = ops.train(splits["train"], splits["val"], model="linear", setting="S",
                      target="OT", lookback=p.lookback, horizon=p.horizon)
    evaluation = ops.evaluate(model, splits["test"], target="OT")
    registered = ops.register(
        model, evaluation["metrics"], data=splits["test"], name=p.model,
        aliases=["challenger"],
        description="Oil temperature of the operations example, retrained on served data.")
