"""Click through every dashboard page in headless Chromium against a real ``amml ui`` (and
``amml serve --ui``) server: content checked, no JavaScript console error, a screenshot of
each page that is not blank."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

WAIT_S = 90


class Session:
    """The browser on one server, checking the console after every step."""

    def __init__(self, driver: Any, base: str, screenshots: Path) -> None:
        self.driver, self.base, self.folder = driver, base, screenshots

    def wait(self, condition: Any) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, WAIT_S).until(condition)

    def css(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def one(self, selector: str) -> Any:
        found = self.wait(lambda d: self.css(selector))
        return found[0]

    def text(self, selector: str) -> str:
        from selenium.common.exceptions import StaleElementReferenceException

        for _ in range(20):  # a partial update may swap the element between find and read
            try:
                return self.one(selector).text
            except StaleElementReferenceException:
                continue
        return self.one(selector).text

    def visit(self, path: str) -> None:
        self.driver.get(self.base + path)
        self.one("body")

    def console_errors(self) -> list[str]:
        return [entry["message"] for entry in self.driver.get_log("browser")
                if entry["level"] == "SEVERE"]

    def check(self, name: str) -> Path:
        """No console error so far on this page; a screenshot that is not blank."""
        errors = self.console_errors()
        assert errors == [], f"JavaScript console errors on {name}: {errors}"
        path = self.folder / f"{name}.png"
        self.driver.save_screenshot(str(path))
        assert_not_blank(path)
        return path

    def charts_drawn(self, minimum: int = 1) -> int:
        # Plotly puts an svg.main-svg into each div it drew
        return len(self.wait(lambda d: (found := self.css(".chart .main-svg"))
                             and len(found) >= minimum and found))

    def sign_in(self, token: str) -> None:
        self.visit("/ui/login")
        self.one("#key").send_keys(token)
        self.one("#sign-in").click()
        self.wait(lambda d: "/ui/login" not in d.current_url)


def assert_not_blank(path: Path) -> None:
    from PIL import Image, ImageStat

    with Image.open(path) as image:
        gray = image.convert("L")
        stat = ImageStat.Stat(gray)
        colors = image.convert("RGB").getcolors(maxcolors=1_000_000) or []
    assert gray.size[0] > 500 and gray.size[1] > 400, f"{path}: {gray.size}"
    assert stat.stddev[0] > 10 and len(colors) > 20, (
        f"{path} looks blank: stddev {stat.stddev[0]:.1f}, {len(colors)} colours")


@pytest.fixture
def ui(browser: Any, ui_server: str, screenshots: Path, demo: dict) -> Session:
    """The browser on ``amml ui``, signed in with the read key (each test may run alone)."""
    session = Session(browser, ui_server, screenshots)
    session.visit("/ui/login")
    if session.driver.get_cookie("amml_session") is None:
        session.sign_in(demo["keys"]["read"])
    session.console_errors()  # start each test with an empty console log
    return session


def test_sign_in_then_runs_filter_paginate_and_compare(ui: Session, demo: dict) -> None:
    ui.driver.delete_all_cookies()
    ui.visit("/ui/runs")
    assert "/ui/login" in ui.driver.current_url  # no session: the sign-in form
    ui.one("#key").send_keys("amml_nope_nope")
    ui.one("#sign-in").click()
    assert "not valid" in ui.text("#login-error")
    ui.check("login-refused")
    ui.sign_in(demo["keys"]["read"])
    assert ui.text("#runs-total") == str(len(demo["runs"]))
    rows = ui.css("#runs .run-row")
    assert len(rows) == len(demo["runs"])
    assert "sensor-forecast" in ui.text("#runs") and "tracked-experiment" in ui.text("#runs")
    ui.check("runs")

    # a filter swaps the table in place (partial update) and keeps the URL shareable
    from selenium.webdriver.support.ui import Select

    Select(ui.one("#filter-workflow")).select_by_value("sensor-forecast")
    ui.wait(lambda d: ui.text("#runs-total") == "2")
    assert "workflow=sensor-forecast" in ui.driver.current_url
    assert "tracked-experiment" not in ui.text("#runs")
    ui.check("runs-filtered")

    for box in ui.css("#runs .pick"):
        box.click()
    ui.one("#compare-button").click()
    ui.wait(lambda d: "/ui/compare" in d.current_url)
    table = ui.text("#compare")
    assert "epochs" in table and "mse" in table
    differing = [row.text for row in ui.css("#compare tr.diff")]
    assert any(row.startswith("epochs") for row in differing)  # highlighted difference
    ui.charts_drawn()  # train_loss/val_loss over epochs, one line per run
    ui.check("compare")


def test_run_detail_step_graph_metrics_and_previews(ui: Session, demo: dict) -> None:
    run_id = demo["forecast_runs"][1]
    ui.visit(f"/ui/runs/{run_id}")
    assert ui.text("#run-id") == run_id
    nodes = ui.css("#step-graph .step-node")
    assert len(nodes) == 8
    titles = " ".join(n.find_element("css selector", "title").get_attribute("textContent")
                      for n in nodes)
    assert "cache hit" in titles and "model (train): ran" in titles  # data cached, train re-ran
    assert "epochs" in ui.text("#params") and "train_loss" in ui.text("#metrics")
    ui.charts_drawn()
    # previews load after the page (partial requests): a table's first rows, the PNG inline
    ui.wait(lambda d: ui.css(".table-preview"))
    image = ui.one(".image-preview")
    ui.wait(lambda d: d.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth > 100", image))
    ui.check("run-detail")


def test_lineage_models_ledger_and_serving_pages(ui: Session, demo: dict) -> None:
    ui.visit("/ui/lineage")
    assert len(ui.css("#lineage-graph .lineage-run")) == len(demo["runs"])
    assert len(ui.css("#lineage-graph .lineage-model")) == 2  # sensor@1 and sensor@2
    assert ui.css("#lineage-graph .lineage-data")
    ui.check("lineage")
    ui.visit(f"/ui/lineage?target={demo['forecast_runs'][0]}:evaluation")
    assert "sensors" in ui.text("#lineage-tree")  # evaluation <- ... <- the source step
    ui.check("lineage-trace")

    ui.visit("/ui/models")
    ui.one(".model-link").click()
    assert ui.text("#model-name") == "sensor"
    assert "champion" in ui.text("#card-title") and "challenger" in ui.text("#versions")
    assert "first champion" in ui.text("#history")
    assert not ui.css("#alias-form")  # a read key sees no write forms
    ui.check("model")

    ui.visit("/ui/ledger")
    assert len(ui.css(".ledger-link")) == len(demo["ledgers"])
    ui.visit(f"/ui/ledger/{demo['ledger']}")
    ui.wait(lambda d: "verified" in ui.text("#verify-status"))  # loaded after the page
    assert "back to entry 1" in ui.text("#entries")
    ui.charts_drawn()
    ui.check("ledger")

    ui.visit("/ui/serving")
    assert "amml serve --ui" in ui.text("#serving-empty")  # no server configured here
    ui.check("serving-empty")


def test_anomalies_drift_and_fleet_pages(ui: Session, demo: dict) -> None:
    ui.visit("/ui/anomalies")
    assert int(ui.text("#alarm-count")) > 0
    ui.charts_drawn()
    ui.check("anomalies")
    for page in ("drift", "fleet"):
        ui.visit(f"/ui/{page}")
        assert ui.css(f"#{page}-empty") or ui.css(".capability-table") or "is empty" in \
            ui.text("main")
        ui.check(page)


def test_admin_moves_an_alias_and_csrf_is_required(ui: Session, demo: dict) -> None:
    ui.driver.delete_all_cookies()
    ui.sign_in(demo["keys"]["admin"])
    ui.visit("/ui/models/sensor")
    ui.one("#alias-name").send_keys("baseline")
    ui.one("#alias-version").send_keys("1")
    ui.one("#alias-reason").send_keys("browser test")
    ui.one("#set-alias").click()
    assert "baseline now points at version 1" in ui.text("#flash")
    assert "browser test" in ui.text("#history")
    ui.check("model-alias-moved")

    # the same session's cookie without the form's CSRF token is refused
    cookie = ui.driver.get_cookie("amml_session")["value"]
    answer = httpx.post(f"{ui.base}/ui/models/sensor/alias", cookies={"amml_session": cookie},
                        data={"alias": "sneaky", "version": "2"}, follow_redirects=False)
    assert answer.status_code == 403 and "CSRF" in answer.text
    ui.one("#logout").click()
    ui.wait(lambda d: "/ui/login" in d.current_url)


def test_serve_ui_shows_live_metrics_of_its_workers(browser: Any, demo: dict, servers: dict,
                                                    screenshots: Path) -> None:
    """``amml serve --ui``: the same pages under the model server, its own /metrics on the
    serving page (version per worker, request counts after real forecasts)."""
    base = servers["serve"].wait("/readyz", ok=(200,))
    headers = {"Authorization": f"Bearer {demo['keys']['predict']}"}
    window = {"series": {c: [0.1] * 24 for c in demo_columns(base, demo)}}
    for _ in range(5):
        answer = httpx.post(f"{base}/v1/models/sensor/forecast", json=window, headers=headers,
                            timeout=10)
        assert answer.status_code == 200, answer.text
    served = Session(browser, base, screenshots)
    served.driver.delete_all_cookies()
    served.sign_in(demo["keys"]["read"])
    served.visit("/ui/serving")
    served.wait(lambda d: served.css("#worker-versions td"))
    assert "sensor@champion" in served.text("#worker-versions")
    served.wait(lambda d: served.text("#requests-total") not in ("", "0"))
    assert "forecast" in served.text("#latency")
    served.charts_drawn()  # the request-rate chart, after two scrapes
    served.check("serve-ui-serving")


def demo_columns(base: str, demo: dict) -> list[str]:
    answer = httpx.get(f"{base}/v1/models/sensor",
                       headers={"X-API-Key": demo["keys"]["read"]}, timeout=10)
    return list(answer.json()["signature"]["columns"])


def test_the_blank_check_refuses_an_empty_page(tmp_path: Path) -> None:
    """What the screenshot check would say of a page that drew nothing."""
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("RGB", (1400, 1000), "white").save(blank)
    with pytest.raises(AssertionError, match="looks blank"):
        assert_not_blank(blank)
