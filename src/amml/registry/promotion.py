"""Promotion rules: move an alias to a candidate only when the candidate is better.

``promote(registry, "oil")`` points ``champion`` at the version ``challenger`` points at, if
the challenger's validation metric (``mse`` by default, lower is better) beats the current
champion's, or when there is no champion yet. The move is a compare-and-set: if the champion
moved while we compared, the comparison is made again against the new holder. The audit trail
records who promoted, when, and what was compared (``mse 0.051 < 0.054``).

Only versions that answer the same question are compared: a candidate whose signature
(columns, outputs, lookback, horizon, frequency) differs from the holder's is refused with
:class:`~amml.SignatureMismatch` naming the fields, unless forced: an MSE
over 96 steps of one column says nothing against one over 336 steps of seven, and every
client of the alias would start getting 422s.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any, Literal

from amml.store.model_registry import (
    ALIAS,
    AliasConflict,
    ModelRegistry,
    ModelVersion,
    RegistryError,
    SignatureMismatch,
    current_actor,
    signature_differences,
)

Mode = Literal["min", "max"]


@dataclass(frozen=True)
class PromotionResult:
    """What :func:`promote` decided, and why."""

    name: str
    promoted: bool
    candidate: str  #: the alias or version number asked for
    target: str  #: the alias that was (or would have been) moved
    to_version: int  #: the candidate's version
    from_version: int | None  #: where the target pointed before (None: nowhere)
    metric: str  #: the metric compared, as found in the versions' metrics
    mode: Mode
    candidate_value: float | None
    target_value: float | None
    forced: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metrics as dotted names: ``{"val": {"mse": 1}}`` -> ``{"val.mse": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _spellings(metric: str) -> list[str]:
    """The names a metric may be recorded under, the given one first.

    >>> _spellings("mse")
    ['mse', 'val_mse', 'val.mse', 'validation.mse']
    >>> _spellings("val_mse")
    ['val_mse', 'val.mse', 'validation.mse', 'mse']
    """
    for prefix in ("val_", "val.", "validation_", "validation."):
        if metric.startswith(prefix):
            base = metric[len(prefix):]
            found = [metric, f"val_{base}", f"val.{base}", f"validation.{base}", base]
            return list(dict.fromkeys(found))
    return [metric, f"val_{metric}", f"val.{metric}", f"validation.{metric}"]


def metric_value(metrics: dict[str, Any], metric: str) -> tuple[str, float]:
    """``(name found, value)`` of ``metric`` in a version's metrics: the exact key, a dotted
    path into nested sections (``val.mse``), or a ``val_``/``val.``/``validation.`` spelling.

    >>> metric_value({"mse": 0.5}, "mse")
    ('mse', 0.5)
    >>> metric_value({"val": {"mse": 0.25}}, "val_mse")
    ('val.mse', 0.25)
    >>> metric_value({"val_mae": 1}, "mae")
    ('val_mae', 1.0)
    >>> metric_value({"mae": 1}, "mse")
    Traceback (most recent call last):
    ...
    amml._exceptions.RegistryError: no metric 'mse' (recorded: mae)
    """
    flat = flatten_metrics(metrics)
    for name in _spellings(metric):
        if name in flat:
            value = flat[name]
            if (isinstance(value, bool) or not isinstance(value, numbers.Real)
                    or not math.isfinite(value)):
                raise RegistryError(f"metric '{name}' is {value!r}, not a finite number")
            return name, float(value)
    recorded = ", ".join(sorted(flat)) or "none"
    raise RegistryError(f"no metric '{metric}' (recorded: {recorded})")


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:.6g}"


def _lookup(version: ModelVersion, metric: str, role: str, force: bool
            ) -> tuple[str | None, float | None]:
    try:
        return metric_value(version.metrics, metric)
    except RegistryError as exc:
        if force:
            return None, None
        raise RegistryError(f"cannot compare {role} {version.ref}: {exc}") from None


def promote(registry: ModelRegistry, name: str, *, candidate: str = "challenger",
            target: str = "champion", metric: str = "mse", mode: Mode = "min",
            actor: str | None = None, reason: str = "", force: bool = False
            ) -> PromotionResult:
    """Point ``target`` at the version ``candidate`` (an alias or a version number) names,
    if its ``metric`` beats the target's (lower with ``mode="min"``, higher with ``"max"``;
    a tie does not beat), or the target does not exist yet, or ``force``.

    Returns the decision either way; raises :class:`RegistryError` when the model, the
    candidate or a needed metric does not exist, and :class:`SignatureMismatch` when the
    candidate's signature differs from the target's holder's (unless ``force``).
    """
    if mode not in ("min", "max"):
        raise RegistryError(f"mode must be 'min' or 'max', got '{mode}'")
    if not ALIAS.match(target):
        raise RegistryError(f"invalid target alias '{target}'")
    who = actor or current_actor()
    for _attempt in range(20):
        chosen = registry.resolve(f"{name}@{candidate}")
        label = chosen.ref if str(candidate).isdigit() else f"{candidate} {chosen.ref}"
        held = registry.alias_version(name, target)
        holder = registry.get(name, held) if held is not None else None
        changed = ([] if holder is None or holder.version == chosen.version
                   else signature_differences(holder.signature, chosen.signature))
        if changed and not force:
            raise SignatureMismatch(
                f"cannot promote {label} to {target}: its signature differs from {target} "
                f"{holder.ref}'s ({'; '.join(changed)}), so their {metric} measure different "
                "things and the alias's clients would break; register it under another name, "
                "or --force", changed)
        key, value = _lookup(chosen, metric, "candidate", force or holder is None)
        held_key, held_value = (None, None) if holder is None else \
            _lookup(holder, metric, target, force)
        promoted, forced = True, False
        if holder is not None and holder.version == chosen.version:
            promoted, why = False, f"{label} already is {target}"
        elif holder is None:
            shown = f" ({key} {_fmt(value)})" if key else ""
            why = f"no {target} yet: {label} becomes {target}{shown}"
        else:
            if key and held_key and key != held_key and not force:
                raise RegistryError(f"cannot compare: {label} records '{key}' but {target} "
                                    f"{holder.ref} records '{held_key}'")
            beats = (value is not None and held_value is not None
                     and (value < held_value if mode == "min" else value > held_value))
            symbol = ("<" if beats else ">=") if mode == "min" else (">" if beats else "<=")
            compared = (f"{key} {_fmt(value)} {symbol} {_fmt(held_value)}"
                        if value is not None and held_value is not None
                        else f"'{metric}' is not recorded on both")
            if changed:  # forced: the metrics are not comparable, whatever they say
                forced, why = True, (f"forced over a signature change ({'; '.join(changed)}): "
                                     f"{label} replaces {target} {holder.ref} ({compared})")
            elif beats:
                why = f"{label} beats {target} {holder.ref}: {compared}"
            elif force:
                forced, why = True, f"forced: {label} replaces {target} {holder.ref} ({compared})"
            else:
                promoted, why = False, f"{label} does not beat {target} {holder.ref}: {compared}"
        if promoted:
            audit = why + (f"; {reason}" if reason else "")
            try:
                registry.set_alias(name, target, chosen.version, actor=who, reason=audit,
                                   expect=held, same_signature=not force)
            except AliasConflict:
                continue  # the target moved while we compared: compare with the new holder
        return PromotionResult(name, promoted, str(candidate), target, chosen.version, held,
                               key or held_key or metric, mode, value, held_value, forced, why)
    raise RegistryError(f"could not promote to '{target}' of '{name}': it keeps moving")
