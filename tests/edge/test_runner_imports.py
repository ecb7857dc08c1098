"""The edge runner stays small: importing it (and starting its argument parsing) loads only
the standard library, numpy, onnxruntime, paho-mqtt and AMML's own light modules."""

from __future__ import annotations

import json
import subprocess
import sys

# socks: paho-mqtt imports PySocks when it happens to be installed (proxy support)
ALLOWED_THIRD_PARTY = {"numpy", "onnxruntime", "paho", "socks"}
ALLOWED_AMML = {"amml", "amml._exceptions", "amml._lazy", "amml.edge", "amml.edge.ed25519",
                "amml.edge.memory",
                "amml.edge.runner"}

PROBE = """
import json, sys
before = set(sys.modules)
import amml.edge.runner as runner
import onnxruntime, paho.mqtt.client  # what the runner loads once it has a model
print(json.dumps({"modules": sorted(set(sys.modules) - before),
                  "stdlib": sorted(sys.stdlib_module_names)}))
"""


def test_the_runner_imports_no_torch_no_pandas_nothing_heavy() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True).stdout
    found = json.loads(out.strip().splitlines()[-1])
    stdlib = set(found["stdlib"])
    tops = {name.split(".")[0] for name in found["modules"]}
    third_party = {t for t in tops if t not in stdlib and not t.startswith("_")
                   and t != "amml"}
    # what numpy and onnxruntime pull in themselves (their own compiled parts)
    assert third_party <= ALLOWED_THIRD_PARTY, third_party - ALLOWED_THIRD_PARTY
    amml_modules = {m for m in found["modules"] if m.split(".")[0] == "amml"}
    assert amml_modules <= ALLOWED_AMML, amml_modules - ALLOWED_AMML
    for heavy in ("torch", "pandas", "sqlalchemy", "cryptography", "onnx", "fastapi"):
        assert heavy not in tops
