"""Workflow parameters: ``${params.name}`` placeholders and ``--param name=value`` overrides.

A placeholder that is a whole value keeps the parameter's type; inside a longer string it is
formatted into the string. ``$${`` writes a literal ``${``.

>>> substitute({"h": "${params.horizon}", "p": "runs/${params.horizon}.csv"}, {"horizon": 96})
{'h': 96, 'p': 'runs/96.csv'}
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from typing import Any

import yaml

PLACEHOLDER = re.compile(r"(?<!\$)\$\{\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*\}")
ANY_PLACEHOLDER = re.compile(r"(?<!\$)\$\{([^}]*)\}?")
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A YAML 1.2 (core schema) float. PyYAML implements YAML 1.1, whose floats need a dot, so it
# reads ``1e-3`` and ``1E5`` as strings; on the command line they are numbers, as in YAML 1.2,
# JSON and Python. Everything PyYAML already reads as a number (``.5``, ``-2``, ``1_000``,
# ``0x10``, ``.inf``) keeps the meaning it has in the workflow file.
YAML12_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")


# Internal, not part of the error tree: its callers catch it at once and report it (a
# ValidationIssue, or the CLI's exit-2 message for --param), so it never reaches a user.
class ParamProblem(Exception):
    """A placeholder or override is wrong; ``hint`` suggests the fix."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def did_you_mean(name: str, choices: Any) -> str | None:
    """``"did you mean 'x'?"`` for the closest choice, or None.

    >>> did_you_mean("lineer", ["linear", "ffill"])
    "did you mean 'linear'?"
    """
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _substitute_str(text: str, params: dict[str, Any]) -> Any:
    for match in ANY_PLACEHOLDER.finditer(text):
        if not PLACEHOLDER.fullmatch(match.group(0)):
            raise ParamProblem(
                f"malformed placeholder '{match.group(0)}'",
                "write parameters as ${params.NAME}; write $${ for a literal ${",
            )
    for match in PLACEHOLDER.finditer(text):
        name = match.group(1)
        if name not in params:
            known = ", ".join(sorted(params)) or "none"
            hint = did_you_mean(name, params) or f"declare it under 'params:' (known: {known})"
            raise ParamProblem(f"unknown parameter '{name}' in '{text}'", hint)
    whole = PLACEHOLDER.fullmatch(text.strip())
    if whole:
        return params[whole.group(1)]
    replaced = PLACEHOLDER.sub(lambda m: str(params[m.group(1)]), text)
    return replaced.replace("$${", "${")


def substitute(
    value: Any,
    params: dict[str, Any],
    on_problem: Callable[[tuple[Any, ...], ParamProblem], None] | None = None,
    path: tuple[Any, ...] = (),
) -> Any:
    """Replace placeholders in ``value`` (nested dicts and lists), reporting problems by path."""
    if isinstance(value, str):
        try:
            return _substitute_str(value, params)
        except ParamProblem as problem:
            if on_problem is None:
                raise
            on_problem(path, problem)
            return value
    if isinstance(value, dict):
        return {k: substitute(v, params, on_problem, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, params, on_problem, (*path, i)) for i, v in enumerate(value)]
    return value


def references(value: Any) -> set[str]:
    """Names of the parameters a value refers to."""
    if isinstance(value, str):
        return set(PLACEHOLDER.findall(value))
    if isinstance(value, dict):
        return set().union(*(references(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(references(v) for v in value)) if value else set()
    return set()


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``name=value``; the value is read as a YAML scalar (``96`` is an int), with
    YAML 1.2's exponent floats (``1e-3``) as numbers too.

    >>> parse_override("horizon=96"), parse_override("path=data/x.csv")
    (('horizon', 96), ('path', 'data/x.csv'))
    >>> parse_override("lr=1e-3"), parse_override("scale=.5"), parse_override("n=1_000")
    (('lr', 0.001), ('scale', 0.5), ('n', 1000))
    """
    if "=" not in text:
        raise ParamProblem(f"--param '{text}' has no '='", "write --param NAME=VALUE")
    name, raw = text.split("=", 1)
    name = name.strip()
    if not PARAM_NAME.match(name):
        raise ParamProblem(f"--param '{text}': '{name}' is not a valid parameter name")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    except ValueError:  # an integer of thousands of digits: Python refuses to convert it
        raise ParamProblem(f"--param '{name}': a {len(raw.strip())}-digit integer is beyond "
                           "the 64-bit integers a workflow may hold") from None
    if value is None and raw.strip() not in ("null", "~"):
        value = raw
    if isinstance(value, str) and YAML12_FLOAT.fullmatch(raw.strip()):
        number = float(raw.strip())
        # beyond float range stays text: a number parameter then says so (coerce_override)
        value = number if math.isfinite(number) else value
    return name, value


def coerce_override(name: str, default: Any, value: Any, raw: str | None = None) -> Any:
    """Give an override the type of the parameter's default, or say why it cannot."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ParamProblem(f"parameter '{name}' expects true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ParamProblem(f"parameter '{name}' expects an integer, got {value!r}")
    if isinstance(default, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and YAML12_FLOAT.fullmatch(value.strip()):
            raise ParamProblem(f"parameter '{name}': {value} is beyond the largest number "
                               "(about 1.8e308)", "write .inf for infinity")
        raise ParamProblem(f"parameter '{name}' expects a number, got {value!r}")
    if isinstance(default, str):
        return raw if raw is not None else str(value)
    if isinstance(default, list) and not isinstance(value, list):
        raise ParamProblem(f"parameter '{name}' expects a list, got {value!r}")
    return value
