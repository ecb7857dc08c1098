"""Model cards generated from a real store: sections, per-slice metrics, checks that fail
when they should, the three formats and ``amml models card``."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import update
from typer.testing import CliRunner

from amml.cli.main import app
from amml.registry.cards import build_card
from amml.store import Store
from amml.store.drift_events import DriftRecords
from amml.store.ledger import Ledger
from amml.store.metadata.schema import ledger_entries
from tests.registry.cards_data import oil_frame, register_version

PNG = b"\x89PNG\r\n\x1a\n"


def test_a_card_says_what_the_version_is_and_how_well_it_does(store: Store,
                                                              tmp_path: Path) -> None:
    register_version(store, tmp_path / "w")
    card = build_card(store, "oil@challenger")
    assert card.ref == "oil@1" and card.aliases == ["challenger"]
    assert "next 6 steps of OT from the last 24 rows of OT" in card.intended_use
    [raw] = card.lineage["sources"]
    assert (raw["step"], raw["rows"]) == ("raw", 60 * 24)
    assert (raw["start"], raw["end"]) == ("2025-01-01 00:00:00", "2025-03-01 23:00:00")
    [test_split] = card.lineage["evaluation"]
    assert test_split["rows"] < raw["rows"] and test_split["end"] == raw["end"]
    assert card.training["config"]["lookback"] == 24  # the parameter's value, resolved
    assert card.training["config"]["model"] == "linear"
    assert "amml" in card.training["code"]
    hours = card.slices["hour_of_day"]
    assert [r["slice"] for r in hours] == list(range(24))
    assert [r["slice"] for r in card.slices["station_id"]] == ["1", "2"]
    assert card.passed, [c.to_json() for c in card.failed_checks]
    names = {c.name: c.status for c in card.checks}
    assert names["beats a naive forecast"] == "pass"
    assert names["no station id slice far worse"] == "pass"
    text = card.to_markdown()
    for section in ("## Intended use", "## Data lineage and time ranges",
                    "## Training configuration and code version",
                    "## Metrics on the test split", "### Per hour of day",
                    "### Per station id", "## Drift history", "## Ledger", "## Known limits",
                    "## Checks"):
        assert section in text
    assert "![station_id](station_id.png)" in text
    assert set(card.plots) == {"hour_of_day", "station_id"}
    assert all(data.startswith(PNG) for data in card.plots.values())
    page = card.to_html()
    assert page.count("data:image/png;base64,") == 2 and "<h2>Checks</h2>" in page
    data = json.loads(json.dumps(card.to_json()))
    assert data["passed"] is True and data["plots"] == ["hour_of_day.png", "station_id.png"]


def test_a_station_far_worse_than_the_rest_fails_its_check(store: Store,
                                                           tmp_path: Path) -> None:
    register_version(store, tmp_path / "w", frame=oil_frame(noisy_station=3.0))
    card = build_card(store, "oil@1", plots=False)
    [check] = [c for c in card.checks if c.name == "no station id slice far worse"]
    assert check.status == "fail" and check.detail.startswith("2 over 3x")
    assert not card.passed
    assert any("Least accurate station id: 2" in limit for limit in card.limits)


def test_drift_history_is_on_the_card(store: Store, tmp_path: Path) -> None:
    register_version(store, tmp_path / "w")
    records = DriftRecords(store)
    records.add_event(model="oil", version=1, detector="error", detected_at=1.8e9,
                      drift_point=1.8e9 - 3600, confidence=0.97, score=2.0, threshold=1.0)
    records.add_scores([dict(model="oil", version=1, detector="error", at=1.8e9 + i,
                             score=0.1 * i, threshold=1.0) for i in range(20)])
    card = build_card(store, "oil@1")
    assert [(e["detector"], e["version"]) for e in card.drift] == [("error", 1)]
    assert card.plots["drift"].startswith(PNG)
    assert "| 2027-01-15 08:00 UTC | 1 | error | 0.97 | 2027-01-15 07:00 UTC |" in \
        card.to_markdown()
    assert any("1 drift event(s) recorded" in limit for limit in card.limits)


def test_the_training_ledger_head_and_signature_and_a_tampered_ledger(
        store: Store, tmp_path: Path) -> None:
    register_version(store, tmp_path / "w", kind="dlinear")
    card = build_card(store, "oil@1", plots=False)
    [ledger] = card.ledgers
    head = Ledger(store, ledger["ledger"]).head()
    assert (ledger["head_hash"], ledger["signature"]) == (head.entry_hash, head.signature)
    assert ledger["verified"] and card.passed
    with store.metadata.engine.begin() as conn:
        conn.execute(update(ledger_entries).where(ledger_entries.c.seq == 0).values(
            body=head.body_text.replace('"seq":1', '"seq":1 ')))
    tampered = build_card(store, "oil@1", plots=False)
    [check] = [c for c in tampered.checks if c.name.startswith("ledger ")]
    assert check.status == "fail" and not tampered.passed


def test_amml_models_card_writes_the_three_formats(tmp_path: Path) -> None:
    from amml.store import open_store

    home = tmp_path / "home"
    with open_store(home) as store:
        register_version(store, tmp_path / "w")
    out = tmp_path / "card"
    result = CliRunner().invoke(app, ["models", "card", "oil@challenger", "--out", str(out),
                                      "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "card.html", "card.json", "card.md", "hour_of_day.png", "station_id.png"]
    assert (out / "card.md").read_text().startswith("# Model card: oil@1")
    printed = CliRunner().invoke(app, ["models", "card", "oil@1", "--json", "--home",
                                       str(home)])
    assert json.loads(printed.stdout)["ref"] == "oil@1"
    with open_store(home) as store:
        register_version(store, tmp_path / "w2", frame=oil_frame(noisy_station=3.0))
    failing = CliRunner().invoke(app, ["models", "card", "oil@2", "--home", str(home)])
    assert failing.exit_code == 1 and "failed checks" in failing.output
