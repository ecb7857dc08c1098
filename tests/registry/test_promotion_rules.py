"""Promotion's decision record, metric spellings and error texts, one rule at a time (the
end-to-end cases are in ``test_registry.py``)."""

from __future__ import annotations

import pytest

from amml.ops.models.forecaster import Forecaster
from amml.registry import ModelRegistry, RegistryError, metric_value, promote
from amml.registry.promotion import _spellings
from amml.store import Store
from amml.store.model_registry import SignatureMismatch


@pytest.fixture
def registry(store: Store) -> ModelRegistry:
    return ModelRegistry(store)


@pytest.mark.parametrize("given", ["val_mse", "val.mse", "validation_mse", "validation.mse"])
def test_every_validation_spelling_maps_to_all_the_others(given: str) -> None:
    spellings = _spellings(given)
    assert spellings[0] == given
    assert set(spellings) == {given, "val_mse", "val.mse", "validation.mse", "mse"}
    assert metric_value({"val": {"mse": 0.5}}, given) == ("val.mse", 0.5)


def test_no_metrics_at_all_says_none_were_recorded() -> None:
    with pytest.raises(RegistryError, match=r"^no metric 'mse' \(recorded: none\)$"):
        metric_value({}, "mse")
    with pytest.raises(RegistryError, match=r"\(recorded: mae, rmse\)$"):
        metric_value({"rmse": 1, "mae": 2}, "mse")


def test_the_result_names_the_model_candidate_target_metric_and_mode(
        registry: ModelRegistry) -> None:
    registry.register("oil", Forecaster("naive", 24, 6), metrics={"val": {"r2": 0.7}})
    registry.register("oil", Forecaster("naive", 24, 6), metrics={"val": {"r2": 0.9}})
    registry.set_alias("oil", "prod", 1)
    result = promote(registry, "oil", candidate="2", target="prod", metric="r2", mode="max")
    assert result.to_json() == {
        "name": "oil", "promoted": True, "candidate": "2", "target": "prod", "to_version": 2,
        "from_version": 1, "metric": "val.r2", "mode": "max", "candidate_value": 0.9,
        "target_value": 0.7, "forced": False,
        "reason": "oil@2 beats prod oil@1: val.r2 0.9 > 0.7"}
    history = registry.alias_history("oil", "prod")
    assert history[-1]["reason"] == result.reason  # no reason given: nothing appended


def test_a_tie_does_not_beat_when_higher_is_better(registry: ModelRegistry) -> None:
    for r2 in (0.8, 0.8):
        registry.register("oil", Forecaster("naive", 24, 6), metrics={"r2": r2})
    registry.set_alias("oil", "champion", 1)
    tie = promote(registry, "oil", candidate="2", metric="r2", mode="max")
    assert not tie.promoted and tie.reason.endswith("r2 0.8 <= 0.8")


def test_a_first_champion_without_the_metric_is_promoted_without_a_figure(
        registry: ModelRegistry) -> None:
    registry.register("oil", Forecaster("naive", 24, 6), metrics={"mae": 0.1})
    result = promote(registry, "oil", candidate="1")
    assert result.promoted and result.reason == "no champion yet: oil@1 becomes champion"
    assert (result.metric, result.candidate_value) == ("mse", None)


def test_a_champion_missing_the_metric_is_an_error_naming_it(registry: ModelRegistry) -> None:
    registry.register("oil", Forecaster("naive", 24, 6), metrics={"mae": 0.1})
    registry.register("oil", Forecaster("naive", 24, 6), metrics={"mse": 0.1})
    registry.set_alias("oil", "champion", 1)
    with pytest.raises(RegistryError, match=r"^cannot compare champion oil@1: no metric 'mse'"):
        promote(registry, "oil", candidate="2")


def test_a_signature_change_is_refused_with_its_fields_or_forced(registry: ModelRegistry
                                                                 ) -> None:
    signature = {"lookback": 24, "horizon": 6, "columns": ["OT"], "outputs": ["OT"]}
    registry.register("oil", Forecaster("naive", 24, 6), metrics={"mse": 0.5},
                      signature=signature)
    registry.register("oil", Forecaster("naive", 48, 6), metrics={"mse": 0.1},
                      signature={**signature, "lookback": 48})
    registry.set_alias("oil", "champion", 1)
    with pytest.raises(SignatureMismatch) as refused:
        promote(registry, "oil", candidate="2")
    message = str(refused.value)
    assert message.startswith("cannot promote oil@2 to champion: its signature differs from "
                              "champion oil@1's (lookback")
    assert message.endswith("so their mse measure different things and the alias's clients "
                            "would break; register it under another name, or --force")
    forced = promote(registry, "oil", candidate="2", force=True, reason="new window")
    assert forced.promoted and forced.forced
    assert forced.reason.startswith("forced over a signature change (lookback")
    assert forced.reason.endswith("oil@2 replaces champion oil@1 (mse 0.1 < 0.5)")
    event = registry.alias_history("oil", "champion")[-1]
    assert event["reason"] == forced.reason + "; new window"
    assert registry.resolve("oil@champion").version == 2


def test_an_invalid_target_alias_is_refused(registry: ModelRegistry) -> None:
    registry.register("oil", Forecaster("naive", 24, 6), metrics={"mse": 0.5})
    with pytest.raises(RegistryError, match="invalid target alias 'Bad Alias'"):
        promote(registry, "oil", candidate="1", target="Bad Alias")


def test_a_champion_moved_during_the_comparison_is_compared_again(
        registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    for mse in (0.5, 0.3, 0.2):
        registry.register("oil", Forecaster("naive", 24, 6), metrics={"mse": mse})
    registry.set_alias("oil", "champion", 1)
    real = registry.set_alias
    raced: list[int] = []

    def another_writer_first(name: str, alias: str, version: int, **kwargs) -> None:
        if not raced:  # between our comparison and our move, oil@3 becomes champion
            raced.append(version)
            real("oil", "champion", 3, actor="other")
        real(name, alias, version, **kwargs)

    monkeypatch.setattr(registry, "set_alias", another_writer_first)
    result = promote(registry, "oil", candidate="2")
    assert raced == [2]
    assert not result.promoted and result.from_version == 3
    assert result.reason == "oil@2 does not beat champion oil@3: mse 0.3 >= 0.2"
    assert registry.alias_version("oil", "champion") == 3


def test_promotion_gives_up_on_an_alias_that_keeps_moving(
        registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    for mse in (0.5, 0.6, 0.1):
        registry.register("oil", Forecaster("naive", 24, 6), metrics={"mse": mse})
    registry.set_alias("oil", "champion", 1)
    real = registry.set_alias
    attempts: list[int] = []

    def always_moved(name: str, alias: str, version: int, **kwargs) -> None:
        attempts.append(version)
        held = registry.alias_version("oil", "champion")
        real("oil", "champion", 2 if held == 1 else 1, actor="other")
        real(name, alias, version, **kwargs)

    monkeypatch.setattr(registry, "set_alias", always_moved)
    with pytest.raises(RegistryError,
                       match=r"^could not promote to 'champion' of 'oil': it keeps moving$"):
        promote(registry, "oil", candidate="3")
    assert attempts == [3] * 20


def test_every_changed_signature_field_is_named(registry: ModelRegistry) -> None:
    signature = {"lookback": 24, "horizon": 6, "columns": ["OT"], "outputs": ["OT"]}
    registry.register("oil", Forecaster("naive", 24, 6), metrics={"mse": 0.5},
                      signature=signature)
    registry.register("oil", Forecaster("naive", 48, 12), metrics={"mse": 0.1},
                      signature={**signature, "lookback": 48, "horizon": 12})
    registry.set_alias("oil", "champion", 1)
    with pytest.raises(SignatureMismatch, match=r"\(lookback: 24 → 48; horizon: 6 → 12\)"):
        promote(registry, "oil", candidate="2")
    forced = promote(registry, "oil", candidate="2", force=True)
    assert forced.reason.startswith(
        "forced over a signature change (lookback: 24 → 48; horizon: 6 → 12): ")
