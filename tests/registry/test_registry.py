"""The model registry: versions, references, aliases with an audit trail, deletion, promotion
rules, and concurrent writers against SQLite and the real PostgreSQL."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from amml.ops.models.forecaster import Forecaster
from amml.registry import (
    AliasConflict,
    ModelRegistry,
    RegistryError,
    load_model,
    metric_value,
    promote,
)
from amml.store import Store


def _model(kind: str = "naive") -> Forecaster:
    return Forecaster(kind, 24, 6)


@pytest.fixture
def registry(store: Store) -> ModelRegistry:
    return ModelRegistry(store)


def _with_versions(registry: ModelRegistry, *mses: float, name: str = "oil") -> None:
    for mse in mses:
        registry.register(name, _model(), metrics={"mse": mse, "mae": mse / 2})


def _chain_ok(events: list[dict]) -> None:
    """Each move starts where the previous one ended: no lost or forked updates."""
    previous = None
    for event in events:
        assert event["from_version"] == previous, events
        previous = event["to_version"]


# -- versions and references ------------------------------------------------------------------
def test_register_records_metrics_signature_lineage_and_resolves(registry: ModelRegistry
                                                                 ) -> None:
    signature = {"freq": "h", "lookback": 24, "horizon": 6, "columns": ["OT"],
                 "outputs": ["OT"], "scaler": None, "model_kind": "naive"}
    first = registry.register("oil", _model(), metrics={"mse": 0.9}, signature=signature,
                              run_id="r1", step_name="registered", description="first",
                              actor="ana")
    second = registry.register("oil", _model("seasonal_naive"), metrics={"mse": 0.5})
    assert (first.version, second.version) == (1, 2)
    assert first.ref == "oil@1" and first.created_by == "ana"
    assert (first.run_id, first.step_name, first.description) == ("r1", "registered", "first")
    assert registry.get("oil", 1).signature == signature
    assert registry.get("oil", 1).metrics == {"mse": 0.9}
    assert registry.resolve("oil").version == 2  # newest
    assert registry.resolve("oil@1").artifact_digest == first.artifact_digest
    assert registry.load(registry.resolve("oil@2")).kind == "seasonal_naive"
    assert registry.names() == ["oil"]


def test_register_by_digest_makes_no_copy(registry: ModelRegistry, store: Store) -> None:
    ref = store.artifacts.save(_model(), "model")
    version = registry.register("oil", ref.digest)
    assert version.artifact_digest == ref.digest and version.artifact_type == "model"
    with pytest.raises(RegistryError, match="not in the artifact store"):
        registry.register("oil", "0" * 64)


@pytest.mark.parametrize("reference, message", [
    ("gas", "no model named 'gas' \\(models: oil\\)"),
    ("oil@7", "has no version 7 \\(versions: 1-2\\)"),
    ("oil@staging", "no alias 'staging' \\(aliases: champion\\)"),
    ("gas@champion", "no model named 'gas'"),
    ("oil@", "invalid model reference"),
])
def test_unknown_references_fail_clearly(registry: ModelRegistry, reference: str,
                                         message: str) -> None:
    _with_versions(registry, 0.9, 0.5)
    registry.set_alias("oil", "champion", 1)
    with pytest.raises(RegistryError, match=message):
        registry.resolve(reference)


def test_invalid_names_are_refused(registry: ModelRegistry) -> None:
    with pytest.raises(RegistryError, match="invalid model name"):
        registry.register("bad name", _model())
    _with_versions(registry, 0.9)
    for alias in ("1st", "has space", "x" * 101):
        with pytest.raises(RegistryError, match="invalid alias"):
            registry.set_alias("oil", alias, 1)


# -- aliases and their audit trail -------------------------------------------------------------
def test_aliases_move_atomically_with_an_audit_trail(registry: ModelRegistry) -> None:
    _with_versions(registry, 0.9, 0.5, 0.4)
    assert registry.set_alias("oil", "champion", 1, actor="ana", reason="first") is None
    assert registry.set_alias("oil", "champion", 3, actor="bo", reason="better") == 1
    registry.set_alias("oil", "challenger", 2, actor="ana")
    assert registry.aliases("oil") == {"challenger": 2, "champion": 3}
    assert registry.get("oil", 3).aliases == ["champion"]
    assert registry.remove_alias("oil", "challenger", actor="cy", reason="done") == 2
    events = registry.alias_history("oil", "champion")
    assert [(e["from_version"], e["to_version"], e["actor"], e["reason"]) for e in events] \
        == [(None, 1, "ana", "first"), (1, 3, "bo", "better")]
    everything = registry.alias_history("oil")
    assert [(e["alias"], e["to_version"]) for e in everything] == [
        ("champion", 1), ("champion", 3), ("challenger", 2), ("challenger", None)]
    assert all(e["at"] > 0 for e in everything)
    with pytest.raises(RegistryError, match="no alias 'challenger'"):
        registry.remove_alias("oil", "challenger")
    with pytest.raises(RegistryError, match="no version 9"):
        registry.set_alias("oil", "champion", 9)
    assert registry.aliases("oil") == {"champion": 3}  # the failed move changed nothing


def test_compare_and_set_alias_refuses_a_moved_alias(registry: ModelRegistry) -> None:
    _with_versions(registry, 0.9, 0.5, 0.4)
    registry.set_alias("oil", "champion", 1, expect=None)
    registry.set_alias("oil", "champion", 2, expect=1)
    with pytest.raises(AliasConflict, match="points at version 2, not version 1"):
        registry.set_alias("oil", "champion", 3, expect=1)
    with pytest.raises(AliasConflict, match="not nothing"):
        registry.set_alias("oil", "champion", 3, expect=None)
    assert registry.alias_version("oil", "champion") == 2
    assert len(registry.alias_history("oil")) == 2


def test_current_actor_comes_from_amml_user(registry: ModelRegistry,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMML_USER", "deploy-bot")
    _with_versions(registry, 0.9)
    registry.set_alias("oil", "champion", 1)
    assert registry.get("oil", 1).created_by == "deploy-bot"
    assert registry.alias_history("oil")[0]["actor"] == "deploy-bot"


# -- deletion ---------------------------------------------------------------------------------
def test_delete_refuses_aliased_versions_unless_forced(registry: ModelRegistry) -> None:
    _with_versions(registry, 0.9, 0.5, 0.4)
    registry.set_alias("oil", "champion", 2)
    registry.set_alias("oil", "backup", 2)
    with pytest.raises(RegistryError, match="still aliased as backup, champion"):
        registry.delete("oil", 2)
    assert registry.get("oil", 2).aliases == ["backup", "champion"]  # nothing changed
    registry.delete("oil", 1)
    registry.delete("oil", 2, force=True, reason="bad data", actor="ana")
    assert [v.version for v in registry.versions("oil")] == [3]
    assert registry.aliases("oil") == {}
    removals = [e for e in registry.alias_history("oil") if e["to_version"] is None]
    assert {e["alias"] for e in removals} == {"backup", "champion"}
    assert all(e["reason"] == "deleting version 2: bad data" and e["actor"] == "ana"
               for e in removals)
    with pytest.raises(RegistryError, match="no version 2 \\(versions: 3\\)"):
        registry.resolve("oil@2")
    with pytest.raises(RegistryError, match="no version 2"):
        registry.delete("oil", 2)
    with pytest.raises(RegistryError, match="no version 2"):
        registry.set_alias("oil", "champion", 2)
    # numbers are never reused: the next version is 4
    assert registry.register("oil", _model()).version == 4


# -- loading ----------------------------------------------------------------------------------
def test_load_model_by_reference(store: Store, tmp_path: Path) -> None:
    registry = ModelRegistry(store)
    registry.register("oil", _model("seasonal_naive"))
    registry.set_alias("oil", "champion", 1)
    model = load_model("oil@champion", tmp_path / ".amml")
    assert (model.kind, model.lookback, model.horizon) == ("seasonal_naive", 24, 6)
    assert load_model("oil", store=store).kind == "seasonal_naive"
    with pytest.raises(RegistryError, match="no alias 'staging'"):
        load_model("oil@staging", store=store)


# -- promotion rules --------------------------------------------------------------------------
def test_promote_without_a_champion_then_only_when_better(registry: ModelRegistry) -> None:
    _with_versions(registry, 0.054, 0.051, 0.06)
    registry.set_alias("oil", "challenger", 1)
    first = promote(registry, "oil", actor="ana")
    assert first.promoted and first.from_version is None and first.to_version == 1
    assert first.reason == "no champion yet: challenger oil@1 becomes champion (mse 0.054)"

    registry.set_alias("oil", "challenger", 2)
    better = promote(registry, "oil", actor="ana", reason="weekly retrain")
    assert better.promoted and (better.from_version, better.to_version) == (1, 2)
    assert (better.candidate_value, better.target_value) == (0.051, 0.054)
    assert better.reason == "challenger oil@2 beats champion oil@1: mse 0.051 < 0.054"
    event = registry.alias_history("oil", "champion")[-1]
    assert event["reason"] == better.reason + "; weekly retrain" and event["actor"] == "ana"

    registry.set_alias("oil", "challenger", 3)
    worse = promote(registry, "oil")
    assert not worse.promoted and worse.reason == \
        "challenger oil@3 does not beat champion oil@2: mse 0.06 >= 0.051"
    assert registry.alias_version("oil", "champion") == 2
    assert len(registry.alias_history("oil", "champion")) == 2  # a refusal moves nothing

    same = promote(registry, "oil", candidate="2")
    assert not same.promoted and same.reason == "oil@2 already is champion"


def test_a_tie_does_not_promote_and_force_does(registry: ModelRegistry) -> None:
    _with_versions(registry, 0.5, 0.5)
    registry.set_alias("oil", "champion", 1)
    tie = promote(registry, "oil", candidate="2")
    assert not tie.promoted and "mse 0.5 >= 0.5" in tie.reason
    forced = promote(registry, "oil", candidate="2", force=True, reason="rollback test")
    assert forced.promoted and forced.forced
    assert forced.reason == "forced: oil@2 replaces champion oil@1 (mse 0.5 >= 0.5)"
    assert registry.alias_history("oil", "champion")[-1]["reason"].endswith("; rollback test")


def test_promote_with_a_higher_is_better_metric(registry: ModelRegistry) -> None:
    for r2 in (0.8, 0.9, 0.7):
        registry.register("oil", _model(), metrics={"val": {"r2": r2}})
    registry.set_alias("oil", "prod", 1)
    up = promote(registry, "oil", candidate="2", target="prod", metric="val_r2", mode="max")
    assert up.promoted and up.metric == "val.r2" and "val.r2 0.9 > 0.8" in up.reason
    down = promote(registry, "oil", candidate="3", target="prod", metric="val.r2", mode="max")
    assert not down.promoted and "val.r2 0.7 <= 0.9" in down.reason


def test_missing_or_mismatched_metrics_are_errors(registry: ModelRegistry) -> None:
    registry.register("oil", _model(), metrics={"mse": 0.5})
    registry.register("oil", _model(), metrics={"mae": 0.1})
    registry.register("oil", _model(), metrics={"val_mse": 0.1})
    registry.set_alias("oil", "champion", 1)
    with pytest.raises(RegistryError, match=r"candidate oil@2: no metric 'mse' \(recorded: mae"):
        promote(registry, "oil", candidate="2")
    with pytest.raises(RegistryError, match="records 'val_mse' but champion oil@1 records 'mse'"):
        promote(registry, "oil", candidate="3")
    with pytest.raises(RegistryError, match="no alias 'challenger'"):
        promote(registry, "oil")
    with pytest.raises(RegistryError, match="mode must be"):
        promote(registry, "oil", candidate="2", mode="median")  # type: ignore[arg-type]
    forced = promote(registry, "oil", candidate="2", force=True)
    assert forced.promoted and "'mse' is not recorded on both" in forced.reason


def test_metric_spellings() -> None:
    assert metric_value({"val_mse": 2}, "mse") == ("val_mse", 2.0)
    assert metric_value({"validation": {"mse": 3}}, "val_mse") == ("validation.mse", 3.0)
    assert metric_value({"mse": 1, "val_mse": 2}, "mse") == ("mse", 1.0)  # exact name first
    with pytest.raises(RegistryError, match="not a finite number"):
        metric_value({"mse": "low"}, "mse")


# -- concurrent writers (SQLite and PostgreSQL) ---------------------------------------------
@pytest.fixture
def busy() -> str:
    """A model name of its own: the PostgreSQL database is shared by the session's tests."""
    return f"busy-{uuid.uuid4().hex[:8]}"


def _in_threads(count: int, work: Callable[[int], None]) -> None:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as exc:  # reported below with the others
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors


def test_concurrent_registration_numbers_versions_without_gaps(any_store: Store,
                                                               busy: str) -> None:
    registry = ModelRegistry(any_store)
    digest = any_store.artifacts.save(_model(), "model").digest
    threads, each = 8, 5
    made: list[int] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        for i in range(each):
            version = registry.register(busy, digest, metrics={"thread": index, "i": i})
            with lock:
                made.append(version.version)

    _in_threads(threads, work)
    expected = list(range(1, threads * each + 1))
    assert sorted(made) == expected
    stored = registry.versions(busy)
    assert [v.version for v in stored] == expected
    assert sorted((v.metrics["thread"], v.metrics["i"]) for v in stored) == \
        sorted((t, i) for t in range(threads) for i in range(each))


def test_concurrent_alias_moves_leave_a_consistent_audit_trail(any_store: Store,
                                                               busy: str) -> None:
    registry = ModelRegistry(any_store)
    digest = any_store.artifacts.save(_model(), "model").digest
    for _ in range(6):
        registry.register(busy, digest)
    threads, moves = 6, 6

    def work(index: int) -> None:
        for i in range(moves):
            registry.set_alias(busy, "champion", (index + i) % 6 + 1, actor=f"t{index}")

    _in_threads(threads, work)  # the alias does not exist at first: creation races too
    events = registry.alias_history(busy, "champion")
    assert len(events) == threads * moves
    _chain_ok(events)
    assert events[-1]["to_version"] == registry.alias_version(busy, "champion")


def test_concurrent_promotions_end_with_the_best(any_store: Store, busy: str) -> None:
    registry = ModelRegistry(any_store)
    digest = any_store.artifacts.save(_model(), "model").digest
    mses = [0.9, 0.3, 0.7, 0.1, 0.5, 0.4, 0.8, 0.2]
    for mse in mses:
        registry.register(busy, digest, metrics={"mse": mse})

    def work(index: int) -> None:
        promote(registry, busy, candidate=str(index + 1), actor=f"t{index}")

    _in_threads(len(mses), work)
    best = mses.index(min(mses)) + 1
    assert registry.alias_version(busy, "champion") == best
    events = registry.alias_history(busy, "champion")
    _chain_ok(events)
    values = [mses[e["to_version"] - 1] for e in events]
    assert values == sorted(values, reverse=True) and len(set(values)) == len(values)


def test_concurrent_delete_and_alias_never_point_at_a_deleted_version(any_store: Store,
                                                                      busy: str) -> None:
    registry = ModelRegistry(any_store)
    digest = any_store.artifacts.save(_model(), "model").digest
    for _ in range(10):
        registry.register(busy, digest)

    def work(index: int) -> None:
        if index % 2:
            for version in range(1, 10):
                with contextlib.suppress(RegistryError):  # deleted first: refused
                    registry.set_alias(busy, f"a{version}", version)
        else:
            for version in range(1, 10):
                with contextlib.suppress(RegistryError):
                    registry.delete(busy, version, force=True)

    _in_threads(4, work)
    live = {v.version for v in registry.versions(busy)}
    assert live == {10}
    assert all(version in live for version in registry.aliases(busy).values())
