"""The promotion policy: a challenger replaces the champion only on evidence, and says so in
the ledger.

:func:`decide` weighs a candidate (``challenger``) against the holder of ``champion`` on two
kinds of evidence:

* **the recent labelled window**: the requests the service answered whose forecasts have
  since come true (:func:`amml.store.labels.labelled_inputs`). Both versions forecast those
  same inputs again and their MSE against what happened is compared; the candidate must beat
  the champion by ``min_live_gain`` (a fraction);
* **the standard test split**: the metric each version recorded when it was evaluated
  (``mse`` by default); the candidate may be at most ``test_tolerance`` worse (a model fitted
  to a new regime is judged on its own, newer, test split).

Guards: at least ``min_points`` labelled forecast points (windows x horizon x outputs), the
same signature, and a model card (:mod:`amml.registry.cards`) with no failed check. With no
champion yet the candidate is promoted when its card passes.

:func:`apply` makes the decision and, when it says promote, moves the alias with a
compare-and-set (:meth:`~amml.store.model_registry.ModelRegistry.set_alias` with ``expect``:
if the champion moved meanwhile, it decides again), appends a signed ``promotion`` entry to
the ledger ``promotions/NAME`` with the evidence, and records every decision, promoted or
not, in ``promotion_decisions``. A server following ``NAME@champion`` swaps on its next poll.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from amml._exceptions import AliasConflict, RegistryError
from amml.registry.cards import PROMOTIONS_LEDGER, build_card
from amml.registry.loaded import LoadedModel
from amml.registry.promotion import metric_value
from amml.store import Store
from amml.store.keys import KeyRing
from amml.store.ledger import Ledger
from amml.store.model_registry import (
    ModelRegistry,
    ModelVersion,
    current_actor,
    signature_differences,
)
from amml.store.operations import OperationsRecords


@dataclass(frozen=True)
class PromotionPolicy:
    """The rule's parameters."""

    metric: str = "mse"
    #: labelled forecast points (windows x horizon x outputs) needed to judge live error
    min_points: int = 50
    #: the candidate's test metric may exceed the champion's by this fraction at most
    test_tolerance: float = 0.10
    #: the candidate's live MSE must be below the champion's by this fraction
    min_live_gain: float = 0.0
    #: how far back the labelled window reaches, seconds (None: everything served)
    window_s: float | None = None
    #: never promote a version whose card has a failed check
    require_card: bool = True

    def __post_init__(self) -> None:
        if self.min_points < 1:
            raise RegistryError(f"min_points must be at least 1, got {self.min_points}")
        for name in ("test_tolerance", "min_live_gain"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise RegistryError(f"{name} must be a number of 0 or more, got {value}")


@dataclass
class PolicyDecision:
    """What the policy decided about one candidate, with the evidence."""

    name: str
    candidate_version: int
    champion_version: int | None
    promoted: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    ledger: str | None = None
    ledger_seq: int | None = None
    ledger_hash: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def live_errors(store: Store, registry: ModelRegistry, versions: list[ModelVersion], *,
                since: float | None = None) -> tuple[int, list[float | None]]:
    """(labelled points, MSE of each version) on the served windows of the model whose
    forecasts have actuals. A version that cannot read those windows gets None."""
    from amml.store.labels import labelled_inputs

    name = versions[0].name
    items = labelled_inputs(store, name, since=since)
    if not items:
        return 0, [None] * len(versions)
    errors: list[float | None] = []
    points = 0
    for version in versions:
        loaded = LoadedModel(version, registry.load(version))
        columns, outputs = list(loaded.shape.columns), list(loaded.shape.outputs)
        xs, ys = [], []
        for item in items:
            have, want = list(item["columns"]), list(item.get("outputs") or outputs)
            if not set(columns) <= set(have) or not set(outputs) <= set(want):
                continue
            window = np.asarray(item["window"], dtype=np.float64)
            target = np.asarray(item["target"], dtype=np.float64)
            if window.shape[0] != loaded.shape.lookback or \
                    target.shape[0] != loaded.shape.horizon:
                continue
            xs.append(window[:, [have.index(c) for c in columns]])
            ys.append(target[:, [want.index(o) for o in outputs]])
        if not xs:
            errors.append(None)
            continue
        predicted = loaded.forecast_windows(np.stack(xs))
        truth = np.stack(ys)
        errors.append(float(np.mean((predicted - truth) ** 2)))
        points = max(points, int(truth.size))
    return points, errors


def decide(store: Store, name: str, *, candidate: str = "challenger",
           target: str = "champion", policy: PromotionPolicy | None = None,
           now: float | None = None) -> PolicyDecision:
    """The decision, without moving anything."""
    policy = policy or PromotionPolicy()
    registry = ModelRegistry(store)
    chosen = registry.resolve(f"{name}@{candidate}")
    held = registry.alias_version(name, target)
    holder = registry.get(name, held) if held is not None else None
    evidence: dict[str, Any] = {"policy": asdict(policy), "candidate": chosen.ref,
                                "champion": holder.ref if holder else None}

    def refuse(reason: str) -> PolicyDecision:
        return PolicyDecision(name, chosen.version, held, False, reason, evidence)

    if holder is not None and holder.version == chosen.version:
        return refuse(f"{chosen.ref} already is {target}")
    if policy.require_card:
        card = build_card(store, chosen.ref, plots=False)
        evidence["card"] = [c.to_json() for c in card.checks]
        if not card.passed:
            failed = "; ".join(f"{c.name} ({c.detail})" for c in card.failed_checks)
            return refuse(f"the card of {chosen.ref} has failed checks: {failed}")
    if holder is None:
        return PolicyDecision(name, chosen.version, None, True,
                              f"no {target} yet: {chosen.ref} becomes {target}", evidence)
    changed = signature_differences(holder.signature, chosen.signature)
    if changed:
        return refuse(f"{chosen.ref} answers another question than {holder.ref} "
                      f"({'; '.join(changed)})")
    try:
        key, value = metric_value(chosen.metrics, policy.metric)
        _, held_value = metric_value(holder.metrics, policy.metric)
    except RegistryError as exc:
        return refuse(f"cannot compare the test split: {exc}")
    evidence["test"] = {"metric": key, "candidate": value, "champion": held_value}
    since = None if policy.window_s is None else (now or time.time()) - policy.window_s
    points, (live_candidate, live_champion) = live_errors(store, registry, [chosen, holder],
                                                          since=since)
    evidence["live"] = {"points": points, "candidate_mse": live_candidate,
                        "champion_mse": live_champion, "since": since}
    if points < policy.min_points or live_candidate is None or live_champion is None:
        return refuse(f"only {points} labelled forecast points in the recent window; the "
                      f"policy needs {policy.min_points}")
    limit = held_value * (1 + policy.test_tolerance)
    if value > limit:
        return refuse(f"test split: {key} {value:.6g} of {chosen.ref} is over "
                      f"{limit:.6g} ({held_value:.6g} of {holder.ref} + "
                      f"{policy.test_tolerance:.0%})")
    needed = live_champion * (1 - policy.min_live_gain)
    if not live_candidate < needed:
        return refuse(f"recent labelled window ({points} points): MSE {live_candidate:.6g} "
                      f"of {chosen.ref} does not beat {live_champion:.6g} of {holder.ref}")
    reason = (f"{chosen.ref} beats {holder.ref} on the recent labelled window ({points} "
              f"points): MSE {live_candidate:.6g} < {live_champion:.6g}; test split {key} "
              f"{value:.6g} vs {held_value:.6g} (tolerance {policy.test_tolerance:.0%}); "
              "card checks pass")
    return PolicyDecision(name, chosen.version, held, True, reason, evidence)


def apply(store: Store, name: str, *, candidate: str = "challenger",
          target: str = "champion", policy: PromotionPolicy | None = None,
          actor: str | None = None, keyring: KeyRing | None = None,
          now: float | None = None) -> PolicyDecision:
    """Decide, and when the decision is to promote, move ``target`` (compare-and-set), append
    the ledger entry and record the decision."""
    registry = ModelRegistry(store)
    records = OperationsRecords(store)
    who = actor or current_actor()
    for _attempt in range(5):
        decision = decide(store, name, candidate=candidate, target=target, policy=policy,
                          now=now)
        if decision.promoted:
            try:
                registry.set_alias(name, target, decision.candidate_version, actor=who,
                                   reason=f"policy: {decision.reason}",
                                   expect=decision.champion_version, same_signature=True)
            except AliasConflict:
                continue  # the champion moved while we compared: decide again
            ledger = Ledger(store, PROMOTIONS_LEDGER.format(name=name), keyring)
            live = decision.evidence.get("live", {})
            test = decision.evidence.get("test", {})
            figures = {"live_mse_candidate": live.get("candidate_mse"),
                       "live_mse_champion": live.get("champion_mse"),
                       "live_points": live.get("points"),
                       "test_candidate": test.get("candidate"),
                       "test_champion": test.get("champion")}
            entry = ledger.append("promotion", metrics={
                k: v for k, v in figures.items() if v is not None}, extra={
                "model": name, "alias": target, "from_version": decision.champion_version,
                "to_version": decision.candidate_version, "actor": who,
                "reason": decision.reason})
            decision.ledger, decision.ledger_seq = ledger.name, entry.seq
            decision.ledger_hash = entry.entry_hash
        records.add_decision(name=name, candidate_version=decision.candidate_version,
                             champion_version=decision.champion_version,
                             promoted=decision.promoted, reason=decision.reason,
                             evidence=decision.evidence, ledger=decision.ledger,
                             ledger_seq=decision.ledger_seq)
        return decision
    raise RegistryError(f"could not promote to '{target}' of '{name}': it keeps moving")
