"""``GET /v1/models/NAME/card`` on the test application: the served version's card, in each
format, behind the read scope, following a swap."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from amml.serve import ServeConfig
from amml.serve.app import create_app
from amml.serve.auth import create_key
from amml.store import Store
from amml.store.model_registry import ModelRegistry
from tests.registry.cards_data import oil_frame, register_version
from tests.serve.conftest import wait_until


def test_the_card_of_the_served_version_in_every_format(store: Store, tmp_path: Path) -> None:
    register_version(store, tmp_path / "w1")
    registry = ModelRegistry(store)
    registry.set_alias("oil", "champion", 1)
    read = {"Authorization": f"Bearer {create_key(store, scope='read')[1]}"}
    other = {"Authorization": f"Bearer {create_key(store, scope='read', models=['x'])[1]}"}
    config = ServeConfig(models=["oil@champion"], home=str(tmp_path / ".amml"),
                         poll_interval=0.05, keys_refresh=0.05, log_flush_interval=0.05)
    with TestClient(create_app(config)) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        assert client.get("/v1/models/oil/card").status_code == 401
        assert client.get("/v1/models/oil/card", headers=other).status_code == 403
        r = client.get("/v1/models/oil/card", headers=read)
        assert r.status_code == 200, r.text
        card = r.json()
        assert (card["ref"], r.headers["X-Model-Version"]) == ("oil@1", "1")
        assert card["passed"] and "hour_of_day.png" in card["plots"]
        md = client.get("/v1/models/oil/card?format=md", headers=read)
        assert md.headers["content-type"].startswith("text/markdown")
        assert md.text.startswith("# Model card: oil@1")
        assert "![hour_of_day](card?format=png&plot=hour_of_day)" in md.text
        page = client.get("/v1/models/oil/card?format=html", headers=read)
        assert "<h1>Model card: oil@1</h1>" in page.text
        png = client.get("/v1/models/oil/card?format=png&plot=station_id", headers=read)
        assert png.content.startswith(b"\x89PNG")
        missing = client.get("/v1/models/oil/card?format=png&plot=nope", headers=read)
        assert missing.status_code == 404 and "hour_of_day" in missing.json()["detail"]
        assert client.get("/v1/models/oil/card?format=pdf", headers=read).status_code == 400
        assert client.get("/v1/models/nope/card", headers=read).status_code == 404
        assert "/v1/models/{name}/card" in client.get("/openapi.json").json()["paths"]

        register_version(store, tmp_path / "w2", frame=oil_frame(seed=1))
        registry.set_alias("oil", "champion", 2)  # the server swaps; the card follows
        wait_until(lambda: client.get("/v1/models/oil/card", headers=read)
                   .headers.get("X-Model-Version") == "2")
        swapped = json.loads(client.get("/v1/models/oil/card", headers=read).content)
        assert swapped["ref"] == "oil@2"
