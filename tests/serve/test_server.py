"""A real ``amml serve`` (uvicorn, 2 worker processes) on a loopback port: the alias moves
back and forth under continuous requests; none fails, and every response is tagged with a
version that was live and holds that version's forecast."""

from __future__ import annotations

import threading
import time

import httpx

from amml.serve.auth import create_key
from tests.serve.conftest import BY_VERSION, WINDOW, register_models, uvicorn_server


def test_swaps_under_load_with_two_workers(store, tmp_path):
    registry = register_models(store)
    _, reader = create_key(store, scope="read")
    _, token = create_key(store, scope="predict")
    home = str(tmp_path / ".amml")
    with uvicorn_server(home, "--model", "oil@champion", "--workers", "2", "--poll-interval",
                        "0.1") as (base, _server):
        stop = threading.Event()
        answers: list[tuple[int, int | None, dict]] = []
        errors: list[str] = []

        def client() -> None:
            with httpx.Client(base_url=base, timeout=5, headers={
                    "Authorization": f"Bearer {token}"}) as http:
                deadline = time.monotonic() + 12
                while not stop.is_set() and time.monotonic() < deadline:
                    try:
                        r = http.post("/v1/models/oil/forecast", json={"window": WINDOW})
                        version = r.headers.get("x-model-version")
                        answers.append((r.status_code, int(version) if version else None,
                                        r.json()))
                    except httpx.HTTPError as exc:
                        errors.append(repr(exc))

        threads = [threading.Thread(target=client) for _ in range(3)]
        for t in threads:
            t.start()
        flips = [2, 1, 2, 1, 2, 1]
        for target in flips:
            time.sleep(0.4)
            registry.set_alias("oil", "champion", target, actor="test", reason="flip")
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(10)

        assert not errors
        assert len(answers) > 50
        assert [a for a in answers if a[0] != 200] == []
        for _, version, body in answers:
            assert version in (1, 2) and body["version"] == version
            assert body["forecast"]["OT"] == BY_VERSION[version]  # produced by that version
        assert {v for _, v, _ in answers} == {1, 2}
        assert answers[-1][1] == 1  # the last flip reached the workers

        metrics = httpx.get(f"{base}/metrics", headers={"X-API-Key": reader}).text
        assert 'amml_model_version{model="oil@champion",pid=' in metrics
        assert "amml_requests_total" in metrics
