"""Served models (signature fallbacks, scalers, smoke tests), keys, --no-auth."""

from __future__ import annotations

import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from amml.ops.models.forecaster import Forecaster
from amml.serve import ServeConfig
from amml.serve.app import create_app
from amml.serve.auth import ApiKeyError, KeyCache, create_key, list_keys, revoke_key
from amml.serve.models import ModelSlot, ServedModel, ServeError, default_references
from amml.store.model_registry import ModelRegistry, ModelVersion
from tests.serve.conftest import WINDOW, register_models, wait_until


def _version(signature: dict) -> ModelVersion:
    return ModelVersion("m", 3, "d" * 64, "model", None, None, {}, signature, "", 0.0, "t")


class Constant:
    """Predicts 1.0 (in the model's scaled units) for every step."""

    lookback, horizon, columns, outputs = 4, 2, ["x", "y"], ["y"]

    def predict_windows(self, x: np.ndarray) -> np.ndarray:
        self.seen = x
        return np.ones((len(x), self.horizon, 1))


def test_scaler_is_applied_to_inputs_and_inverted_on_outputs():
    model = Constant()
    served = ServedModel.build(_version({"scaler": {"x": {"offset": 10.0, "scale": 2.0},
                                                    "y": {"offset": 100.0, "scale": 5.0}}}),
                               model)
    assert served.spec.lookback == 4 and served.spec.columns == ("x", "y")
    y = served.forecast(np.full((1, 4, 2), [12.0, 105.0]))
    assert np.allclose(model.seen, 1.0)  # (12 - 10) / 2 and (105 - 100) / 5
    assert np.allclose(y, 1.0 * 5.0 + 100.0)
    served.smoke_test()


def test_signature_falls_back_to_the_model_and_univariate_forecasters_work():
    served = ServedModel.build(_version({}), Forecaster("naive", 6, 3))
    assert served.spec.columns == ("value",) and served.spec.horizon == 3
    out = served.forecast(np.arange(6.0).reshape(1, 6, 1))
    assert out.shape == (1, 3, 1) and np.allclose(out, 5.0)


def test_smoke_test_rejects_wrong_shapes_and_non_finite_output():
    class Bad(Constant):
        def predict_windows(self, x):
            return np.full((len(x), self.horizon, 1), np.nan)

    with pytest.raises(ServeError, match="non-finite"):
        ServedModel.build(_version({}), Bad()).smoke_test()
    with pytest.raises(ServeError, match="output shape"):
        ServedModel.build(_version({"horizon": 3}), Constant()).smoke_test()
    with pytest.raises(ServeError, match="lookback and horizon"):
        ServedModel.build(_version({}), object())


def test_slot_modes_and_default_references(store):
    registry = register_models(store)
    assert default_references(registry) == ["multi", "oil@champion"]
    assert ModelSlot("oil@champion").target(registry) == 1
    assert ModelSlot("oil").target(registry) == 2
    assert ModelSlot("oil@1").mode == "pinned" and ModelSlot("oil@1").target(registry) == 1


def test_keys_are_stored_hashed_and_scoped(store):
    key, token = create_key(store, scope="read", models=["oil"], label="dash")
    secret = token.split("_")[2]
    stored = list_keys(store)[0]
    assert stored.secret_hash.startswith("sha256:") and secret not in stored.secret_hash
    assert stored.to_json()["models"] == ["oil"] and stored.label == "dash"
    assert key.allows("read", "oil") and not key.allows("predict", "oil")
    with pytest.raises(ApiKeyError, match="unknown scope"):
        create_key(store, scope="root")
    with pytest.raises(ApiKeyError, match="no API key"):
        revoke_key(store, "missing")
    revoke_key(store, key.key_id[:4])
    assert list_keys(store, include_revoked=False) == []
    assert KeyCache(store).authenticate(token) is None
    assert KeyCache(store).authenticate("not-a-key") is None


def test_no_auth_serves_without_keys(store, tmp_path):
    register_models(store)
    config = ServeConfig(models=["oil@champion"], home=str(tmp_path / ".amml"), auth=False,
                         poll_interval=0.05, log_requests=False)
    with TestClient(create_app(config)) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        response = client.post("/v1/models/oil/forecast", json={"window": WINDOW})
        assert response.status_code == 200 and response.json()["version"] == 1
        assert client.get("/v1/models").status_code == 200


def test_readyz_is_503_until_loaded(store, tmp_path):
    registry = ModelRegistry(store)
    config = ServeConfig(models=["late@champion"], home=str(tmp_path / ".amml"), auth=False,
                         poll_interval=0.05)
    from tests.serve.conftest import baseline, signature

    with TestClient(create_app(config)) as client:
        time.sleep(0.1)
        response = client.get("/readyz")
        assert response.status_code == 503
        assert "points at no version" in response.json()["models"]["late@champion"]["error"]
        assert client.post("/v1/models/late/forecast",
                           json={"window": WINDOW}).status_code == 503
        registry.register("late", baseline("naive", ["OT"], ["OT"]),
                          signature=signature(["OT"], ["OT"]))
        registry.set_alias("late", "champion", 1, actor="test")
        wait_until(lambda: client.get("/readyz").status_code == 200)
