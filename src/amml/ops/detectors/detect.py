"""``detect``: run any registered anomaly detector over a table, threshold its scores, and
report the alarms (and how they match labels, when the table has them).

The detector is named (``detector``) with its parameters (``params``); both are checked when
the workflow is validated, so a typo fails before anything runs. A univariate detector scores
each column on its own (``score_<col>``) and the row's score is the highest of them, so an
anomaly in any one sensor raises the alarm; a multivariate detector sees the row vectors.
Scores are calibrated to ``[0, 1]``; the threshold is chosen as ``threshold`` says (see
:mod:`amml.ops.detectors.thresholds`).

A reference-fitted detector (``pca_t2q``, ``mset``, ``pyod``, the autoencoders) has a second
life: given a ``reference`` table (rows believed normal: a training split, an anomaly-free
run), the step fits it there, freezes its model and threshold (0.5 on the calibrated score:
another ``threshold`` is refused, ``min_gap`` may stay), and scores the table without learning
from it, taking its columns by the names it was fitted on. The fitted detector, as fitted, is
the step's ``detector`` output, a ``model`` artifact (safetensors and JSON, no pickle); another
step takes it as its ``fitted`` input and scores new rows exactly as it would have.
Registered (the ``register`` op), it is found by name in later runs: ``model: pump@champion``
scores with the version the alias points at (the step cache keys such a step by the version
it resolves to: it runs again once the alias moves). ``explain: true`` then names the column
behind each alarm (``cause``, the one with the largest Shapley contribution to the score,
:mod:`amml.ops.detectors.explain`), with every column's signed share in the report.

>>> import numpy as np, pandas as pd
>>> from amml.ops.base import StepContext
>>> from amml.ops.detectors.detect import Detect
>>> rng = np.random.default_rng(0)
>>> frame = pd.DataFrame({"x": rng.normal(0, 1, 600), "y": rng.normal(5, 1, 600)})
>>> frame.loc[500, "y"] = 25.0
>>> result = Detect(detector="amml").run(StepContext(), frame)
>>> list(result["out"].columns)
['x', 'y', 'score', 'alarm', 'score_x', 'score_y']
>>> int(result["out"]["score"].idxmax()), result["report"]["threshold"]
(500, 0.5)
"""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator

from amml._exceptions import AMMLError, OpError
from amml._lazy import pandas as pd
from amml.lang.params import did_you_mean
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.detectors.base import DETECTORS, Detector, detector_names, make_detector
from amml.ops.detectors.fitted import FittedDetector, fitted_detector_names
from amml.ops.detectors.thresholds import (
    ThresholdConfig,
    alarm_metrics,
    alarms,
    choose_threshold,
)
from amml.ops.registry import register

#: The report lists at most this many alarms (rows and timestamps); ``alarms`` counts them all.
MAX_LISTED_ALARMS = 1000
#: The detector of a step that names none (and fits none elsewhere).
DEFAULT_DETECTOR = "amml"
_RESERVED = ("score", "alarm")


@register
class Detect(Op):
    """Score a table with a registered detector; alarms where the score passes a threshold."""

    name = "detect"
    inputs = {"table": Input("table"),
              "reference": Input("table", required=False,
                                 doc="rows believed normal: fit the detector here, then score "
                                     "the table with its model and threshold frozen"),
              "fitted": Input("model", required=False,
                              doc="a detector fitted earlier (a detect step's 'detector' "
                                  "output): score the table with it")}
    outputs = {"out": "table", "report": "json", "detector": "model"}
    #: a fitted detector exists only when the step fits or is given one
    optional_outputs = frozenset({"detector"})
    #: detectors are looked up by name: the step cache covers every built-in one
    depends_on = ("amml.ops.detectors",)

    class Config(OpConfig):
        detector: str | None = Field(None, description="a registered detector's name "
                                     "(default: amml; with a 'fitted' input or a "
                                     "'model', the one it holds)")
        params: dict[str, Any] = Field(default_factory=dict,
                                       description="the detector's parameters")
        columns: list[str] | None = Field(None, description="columns to score (default: every "
                                          "numeric column but the label and the timestamp)")
        timestamp: str | None = Field(None, description="timestamp column (default: the time "
                                      "index, or the first datetime column)")
        threshold: ThresholdConfig = Field(default_factory=ThresholdConfig)
        label: str | None = Field(None, description="0/1 column to score the alarms against")
        model: str | None = Field(None, description="a registered fitted detector to score "
                                  "with: NAME, NAME@ALIAS or NAME@VERSION (instead of fitting "
                                  "one here)")
        explain: bool = Field(False, description="name the column that drove each alarm of a "
                              "fitted detector ('cause'), with every column's signed share of "
                              "its score in the report (Shapley values over the columns; the "
                              "first 1000 alarms)")

        @field_validator("detector")
        @classmethod
        def _known_detector(cls, name: str | None) -> str | None:
            if name is None:
                return None
            known = detector_names()
            if name not in known:
                hint = did_you_mean(name, known)
                raise ValueError(f"unknown detector '{name}'" + (f"; {hint}" if hint else "")
                                 + f" (known: {', '.join(known)})")
            return name

        @field_validator("params")
        @classmethod
        def _detector_takes(cls, params: dict[str, Any],
                            info: ValidationInfo) -> dict[str, Any]:
            # a field validator, so that a mistake is reported at 'params' (its line), not at
            # the whole step; 'detector' is validated first (declared first)
            if "detector" not in info.data:
                return params  # the detector name itself is wrong: reported there
            try:
                make_detector(info.data["detector"] or DEFAULT_DETECTOR, **params)
            except (OpError, TypeError, ValueError) as exc:
                raise ValueError(str(exc)) from None
            return params

        @model_validator(mode="after")
        def _consistent(self) -> Detect.Config:
            if self.threshold.kind == "labels" and self.label is None:
                raise ValueError("threshold kind 'labels' needs a label column: set 'label'")
            return self

        @property
        def detector_name(self) -> str:
            return self.detector or DEFAULT_DETECTOR

    def _version(self, store: Any) -> Any:
        """The registered version ``model`` resolves to in ``store`` (None: none), looked up
        once for the engine's ``store_state`` and ``state_code``."""
        cached = getattr(self, "_resolved", None)
        if cached is None or cached[0] is not store:
            version = None
            if getattr(store, "metadata", None) is not None:
                from amml.store.model_registry import ModelRegistry

                with contextlib.suppress(AMMLError):
                    version = ModelRegistry(store).resolve(self.config.model)
            self._resolved = (store, version)
        return self._resolved[1]

    def store_state(self, store: Any) -> str | None:
        # a registry reference reads the registry, whose aliases move: the step is cached by
        # the version it resolves to now (none resolved: it runs, and says why)
        if not self.config.model:
            return ""
        version = self._version(store)
        if version is None:
            return None
        return json.dumps([version.name, version.version, version.artifact_digest])

    def state_code(self, store: Any) -> tuple[Any, ...]:
        # the class a registered version names, when it is a user's (imported by the
        # workflow): AMML's own detectors are in the step's code digest already
        version = self._version(store) if self.config.model else None
        name = version.signature.get("detector") if version is not None else None
        cls = DETECTORS.find(name) if isinstance(name, str) else None
        return () if cls is None or cls.__module__.split(".")[0] == "amml" else (cls,)

    def code_references(self) -> tuple[Any, ...]:
        # the detector is named in the config: a user's, wherever it lives, is covered too
        return (DETECTORS.get(self.config.detector_name),)

    def run(self, ctx: StepContext, table: pd.DataFrame, reference: pd.DataFrame | None = None,
            fitted: Any = None) -> dict[str, Any]:
        c = self.config
        stamps, stamp_column = _timestamps(table, c.timestamp)
        if c.label is not None and c.label not in table.columns:
            raise OpError(f"label column '{c.label}' not found (columns: "
                          f"{', '.join(map(str, table.columns))})")
        if reference is not None or fitted is not None or c.model is not None:
            _check_frozen_threshold(c)  # before any fitting
        fitted = _fitted_detector(ctx, c, reference, fitted, stamp_column)
        if fitted is not None:
            columns = _fitted_columns(c, fitted, table, stamp_column)
            values = table[columns].to_numpy(dtype=float)
            # scoring moves a detector's stream state: a copy scores; the output (and a
            # stored input) stays as fitted
            used: Detector = copy.deepcopy(fitted)
            per_column = pd.DataFrame(index=range(len(values)))
            score = used.score(values)  # frozen: rows that follow what it has seen
        else:
            if c.explain:
                raise OpError("'explain' names the columns behind a fitted detector's alarms: "
                              "give the step a 'reference', a 'fitted' input or a 'model' (a "
                              "streaming detector scores each column on its own: its "
                              "score_<column> outputs say which)")
            columns = _columns(table, c.columns, {c.label, stamp_column})
            values = table[columns].to_numpy(dtype=float)
            used = make_detector(c.detector_name, **c.params)
            per_column = _score(used, values, columns, stamps)
            score = (per_column.max(axis=1) if len(per_column.columns) else
                     used.score_series(values, stamps))
        labels = (pd.to_numeric(table[c.label], errors="coerce").to_numpy(dtype=float)
                  if c.label is not None else None)
        threshold = choose_threshold(score, c.threshold, labels, stamps)
        alarm = alarms(score, threshold, c.threshold.min_gap)

        out = pd.DataFrame(index=table.index)
        if stamp_column is not None:
            out[stamp_column] = table[stamp_column]
        for column in columns:
            out[column] = table[column]
        out["score"] = np.asarray(score, dtype=float)
        out["alarm"] = alarm
        for column in per_column.columns:
            out[column] = per_column[column].to_numpy()
        causes: list[dict[str, Any]] | None = None
        if c.explain and fitted is not None:
            out["cause"], causes, unexplained = _causes(fitted, values, alarm, columns, stamps)
        if c.label is not None:
            out[c.label] = table[c.label]

        metrics: dict[str, float] = {}
        if labels is not None:
            labelled = np.isfinite(labels)
            metrics = alarm_metrics(alarm[labelled], labels[labelled] > 0)
        ctx.log_metrics({"alarms": int(alarm.sum()), "threshold": threshold, **metrics})
        report = _report(c, used, columns, threshold, alarm, stamps, labels, metrics)
        if causes is not None:
            report["causes"], report["causes_truncated"] = causes, unexplained
        result: dict[str, Any] = {"out": out, "report": report}
        if fitted is not None:
            report["fitted"] = {"on": (f"model {c.model}" if c.model else "reference"
                                       if reference is not None else "fitted input"),
                                "reference_rows": (None if reference is None
                                                   else len(reference)),
                                "threshold_raw": fitted.threshold_raw_}
            pinned = _pinned(ctx) if c.model else None
            if pinned is not None:  # the version the alias pointed at when the step ran
                report["fitted"]["version"] = pinned[1]
            # as fitted, not as left by this table: the same reference and settings give the
            # same artifact, so registering it again registers nothing new
            result["detector"] = fitted
        return result


def _causes(fitted: FittedDetector, values: np.ndarray, alarm: np.ndarray,
            columns: list[Any], stamps: pd.DatetimeIndex | None
            ) -> tuple[list[str], list[dict[str, Any]], bool]:
    """The column that drove each alarm (the largest contribution; "" on other rows and where
    the score overflowed), every column's signed share per explained alarm, and whether alarms
    were left unexplained (beyond ``MAX_LISTED_ALARMS``). Each from the window that ends at the
    alarm's row, with gaps filled and the rows before the table taken as in scoring."""
    if fitted.refit > 0:
        raise OpError(f"'explain' needs a frozen detector: this {fitted.name} refits every "
                      f"{fitted.refit} rows (refit: 0 to explain)")
    from amml.ops.detectors.explain import causes, column_contributions, shares

    before = fitted._context  # what the table's first rows are scored after
    filled = copy.deepcopy(fitted)._rows(values)  # the gaps filled as scoring filled them
    full = np.concatenate([before, filled]) if len(before) else filled
    span = fitted.context + 1
    alarmed = np.flatnonzero(alarm)
    rows = [int(r) for r in alarmed[:MAX_LISTED_ALARMS] if r + len(before) + 1 >= span]
    cause = [""] * len(values)
    listed: list[dict[str, Any]] = []
    if rows:
        windows = np.stack([full[r + len(before) + 1 - span:r + len(before) + 1]
                            for r in rows])
        contributions = column_contributions(fitted, windows)
        names = [str(column) for column in columns]
        for row, top, row_share in zip(rows, causes(contributions), shares(contributions),
                                       strict=True):
            cause[row] = "" if top is None else names[top]
            listed.append({"row": row, "cause": cause[row] or None,
                           "timestamp": None if stamps is None else stamps[row].isoformat(),
                           "shares": (None if top is None else dict(zip(
                               names, np.round(row_share, 4).tolist(), strict=True)))})
    return cause, listed, len(alarmed) > MAX_LISTED_ALARMS


def _fitted_detector(ctx: StepContext, c: Detect.Config, reference: pd.DataFrame | None,
                     fitted: Any, stamp_column: str | None) -> FittedDetector | None:
    """The step's fitted detector: fitted on ``reference``, the ``fitted`` input, or the
    registered ``model``; None when the detector streams."""
    given = [what for what, value in (("'reference'", reference), ("'fitted'", fitted),
                                      ("'model'", c.model)) if value is not None]
    if len(given) > 1:
        raise OpError(f"give one of 'reference' (fit the detector in this step), 'fitted' "
                      f"(one fitted earlier) or 'model' (a registered one), not "
                      f"{' and '.join(given)}")
    if reference is not None:
        return _fit_on_reference(c, reference, stamp_column)
    if fitted is not None:
        return _fitted_input(c, fitted, "input 'fitted'")
    if c.model is not None:
        return _fitted_input(c, _registered(ctx, c.model), f"model '{c.model}'")
    return None


def _fit_on_reference(c: Detect.Config, reference: pd.DataFrame,
                      stamp_column: str | None) -> FittedDetector:
    """A fresh ``c.detector`` fitted on the reference's columns (the table's, by name)."""
    detector = make_detector(c.detector_name, **c.params)
    if not isinstance(detector, FittedDetector):
        raise OpError(f"detector '{c.detector_name}' learns as it streams: it has no fit on a "
                      f"reference. Drop 'reference', or use a reference-fitted detector "
                      f"({', '.join(fitted_detector_names())})")
    _, reference_stamps = _timestamps(reference, c.timestamp)
    try:
        columns = _columns(reference, c.columns, {c.label, stamp_column, reference_stamps})
    except OpError as exc:
        raise OpError(f"reference: {exc}") from None
    detector.fit(reference[columns])
    return detector


def _check_frozen_threshold(c: Detect.Config) -> None:
    """A fitted detector alarms at the threshold frozen on its reference (0.5 on its
    calibrated score), here, on the server and on the edge alike: no other is chosen."""
    chosen = c.threshold
    if chosen.kind != "fixed" or chosen.value != ThresholdConfig().value:
        raise OpError("a fitted detector's threshold is frozen on its reference (0.5 on its "
                      "calibrated score): drop 'threshold' (min_gap may stay), or move the "
                      "detector's own threshold with its 'quantile' or 'factor' params")


def _fitted_columns(c: Detect.Config, fitted: FittedDetector, table: pd.DataFrame,
                    stamp_column: str | None) -> list[Any]:
    """The table's columns in the order the detector was fitted on: by name where the
    detector knows its columns (as text: a stored detector keeps them so; a configured list
    must name the same ones)."""
    width = len(fitted.center_)
    if fitted.columns_ is None:
        columns = _columns(table, c.columns, {c.label, stamp_column})
        if len(columns) != width:
            raise OpError(f"the fitted {fitted.name} scores {width} columns, the table gives "
                          f"{len(columns)}: {columns}")
        return columns
    known = list(fitted.columns_)
    if c.columns is not None and sorted(map(str, c.columns)) != sorted(known):
        raise OpError(f"columns {list(c.columns)} are not the ones the {fitted.name} detector "
                      f"was fitted on: {known}")
    by_text = {str(column): column for column in table.columns}
    missing = [name for name in known if name not in by_text]
    if missing:
        raise OpError(f"the table lacks {missing}, which the {fitted.name} detector was fitted "
                      f"on (it scores {known}; the table has "
                      f"{', '.join(map(str, table.columns))})")
    return _columns(table, [by_text[name] for name in known], {c.label})


def _pinned(ctx: StepContext) -> tuple[str, int, str] | None:
    """The registered version the engine keyed the step by (``store_state``'s token): name,
    version, artifact digest; None outside the engine."""
    for part in ctx.state_token.split("|"):  # the engine may join other parts to it
        try:
            name, version, digest = json.loads(part)[:3]
        except (ValueError, TypeError):
            continue
        if isinstance(version, int):
            return name, version, digest
    return None


def _registered(ctx: StepContext, reference: str) -> Any:
    registry = ctx.model_registry()
    if registry is None:
        raise OpError(f"model '{reference}' is read from the model registry: run the workflow "
                      "with a store (amml run, or run_workflow(..., store=open_store()))")
    pinned = _pinned(ctx)
    try:
        # the version the step's key holds: an alias moved since (a register step of this
        # run, a promotion) does not put another version's scores under that key
        version = (registry.get(pinned[0], pinned[1]) if pinned is not None
                   else registry.resolve(reference))
        if pinned is not None and version.artifact_digest != pinned[2]:
            raise OpError(f"version {pinned[1]} changed as the step started")
        return registry.load(version)
    except AMMLError as exc:
        raise OpError(f"model '{reference}': {exc}") from None


def _fitted_input(c: Detect.Config, detector: Any, what: str) -> FittedDetector:
    """The ``detector`` input, checked against the config."""
    if not isinstance(detector, FittedDetector) or not detector.fitted_:
        raise OpError(f"{what} is a {type(detector).__name__}, not a fitted detector (the "
                      f"'detector' output of a detect step with a 'reference')")
    if c.detector is not None and c.detector != detector.name:
        raise OpError(f"detector '{c.detector}' is configured, but {what} is a fitted "
                      f"'{detector.name}': drop one of them")
    if c.params:
        raise OpError(f"params configure a detector fitted in this step; {what} keeps the "
                      f"parameters it was fitted with: drop 'params'")
    return detector


def _timestamps(table: pd.DataFrame, name: str | None) -> tuple[pd.DatetimeIndex | None,
                                                                    str | None]:
    """The rows' timestamps, and the column holding them (None when they are the index)."""
    if name is not None:
        if name in table.columns:
            return pd.DatetimeIndex(pd.to_datetime(table[name])), name
        if table.index.name == name:
            return pd.DatetimeIndex(pd.to_datetime(table.index)), None
        raise OpError(f"timestamp column '{name}' not found (columns: "
                      f"{', '.join(map(str, table.columns))}; index: {table.index.name})")
    if isinstance(table.index, pd.DatetimeIndex):
        return table.index, None
    for column in table.columns:
        if pd.api.types.is_datetime64_any_dtype(table[column]):
            return pd.DatetimeIndex(table[column]), column
    return None, None


def _columns(table: pd.DataFrame, wanted: list[str] | None, skip: set[str | None]) -> list[str]:
    if wanted is None:
        columns = [col for col in table.columns if col not in skip
                   and pd.api.types.is_numeric_dtype(table[col])
                   and not pd.api.types.is_bool_dtype(table[col])]
        if not columns:
            raise OpError("detect: the table has no numeric column to score")
    else:
        columns = list(wanted)
        missing = [col for col in columns if col not in table.columns]
        if missing:
            hints = [h for h in (did_you_mean(m, table.columns) for m in missing) if h]
            raise OpError(f"columns {missing} not found" + (f"; {hints[0]}" if hints else "")
                          + f" (columns: {', '.join(map(str, table.columns))})")
        text = [col for col in columns if not pd.api.types.is_numeric_dtype(table[col])]
        if text:
            raise OpError(f"columns {text} are not numeric and cannot be scored")
    clashes = [col for col in columns if col in _RESERVED or str(col).startswith("score_")]
    if clashes:
        raise OpError(f"columns {clashes} clash with the output's score/alarm columns: "
                      f"rename them first")
    return columns


def _score(detector: Detector, values: np.ndarray, columns: list[str],
           stamps: pd.DatetimeIndex | None) -> pd.DataFrame:
    """Per-column scores of a univariate detector (an empty frame for a multivariate one)."""
    if detector.multivariate:
        return pd.DataFrame(index=range(len(values)))
    return pd.DataFrame({f"score_{col}": detector.score_series(values[:, i], stamps)
                         for i, col in enumerate(columns)})


def _report(c: Detect.Config, detector: Detector, columns: list[str], threshold: float,
            alarm: np.ndarray, stamps: pd.DatetimeIndex | None, labels: np.ndarray | None,
            metrics: dict[str, float]) -> dict[str, Any]:
    rows = np.flatnonzero(alarm)
    listed = rows[:MAX_LISTED_ALARMS]
    report: dict[str, Any] = {
        "detector": detector.name, "params": _jsonable(detector.get_params()),
        "multivariate": detector.multivariate, "columns": columns,
        "threshold": threshold, "threshold_config": _threshold_config(c, detector),
        "rows": len(alarm), "alarms": len(rows),
        "alarm_rows": listed.tolist(),
        "alarm_timestamps": (None if stamps is None else
                             [t.isoformat() for t in stamps[listed]]),
        "alarms_truncated": len(rows) > MAX_LISTED_ALARMS,
        "metrics": metrics,
    }
    if labels is not None:
        labelled = np.isfinite(labels)
        report["labelled_rows"] = int(labelled.sum())
        report["anomalous_rows"] = int((labels[labelled] > 0).sum())
    return report


def _threshold_config(c: Detect.Config, detector: Detector) -> dict[str, Any]:
    """The threshold settings that decided: a fitted detector's is frozen at 0.5 (only
    ``min_gap`` may change), so the unused quantile settings are left out of its report."""
    config = c.threshold.model_dump()
    if isinstance(detector, FittedDetector):
        return {key: config[key] for key in ("kind", "value", "min_gap")}
    return config


def _jsonable(value: Any) -> Any:
    """Parameters as JSON (arrays as lists, anything exotic by its repr), for the report."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)
