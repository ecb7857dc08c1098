"""The drift records (migration 0006) on SQLite and the real PostgreSQL."""

from __future__ import annotations

from amml.store import Store
from amml.store.drift_events import DriftRecords


def test_events_and_scores_round_trip(any_store: Store) -> None:
    records = DriftRecords(any_store)
    model = f"drift-{id(records)}"  # the PostgreSQL database is shared between tests
    records.add_event(model=model, version=2, detector="input-ks", detected_at=50.0,
                      drift_point=40.0, confidence=0.999, score=1.7, threshold=1.0,
                      features=["OT"], details={"statistic": {"OT": 0.4}})
    records.add_event(model=model, version=2, detector="attribution", detected_at=30.0,
                      drift_point=25.5, confidence=0.97, score=1.0, threshold=1.0)
    records.add_event(model="other", version=1, detector="attribution", detected_at=1.0,
                      drift_point=0.0, confidence=0.5, score=1.0, threshold=1.0)
    events = records.events(model)
    assert [(e["detector"], e["drift_point"]) for e in events] == [("attribution", 25.5),
                                                                  ("input-ks", 40.0)]
    assert events[1]["features"] == ["OT"] and events[1]["details"]["statistic"]["OT"] == 0.4
    assert events[1]["version"] == 2 and events[1]["recorded_at"] > 0
    assert [e["detector"] for e in records.events(model, since=45.0)] == ["input-ks"]
    records.add_scores([dict(model=model, version=2, detector="attribution", at=float(t),
                             score=t / 10, threshold=1.0) for t in (3, 1, 2)])
    assert [s["at"] for s in records.scores(model)] == [1.0, 2.0, 3.0]
