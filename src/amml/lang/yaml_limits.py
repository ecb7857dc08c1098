"""Limits that keep a hostile workflow document from exhausting memory, the stack or the CPU.

A workflow is a few kilobytes of YAML (or JSON). A document can still be written to hurt: an
alias bomb ("billion laughs") is a few hundred bytes that expand to billions of nodes, 100,000
nested brackets overflow the recursive parts of any tree walker, a 5,000-digit integer cannot
even be printed by Python. Loading therefore checks, in this order:

* the size of the file in bytes (before reading it),
* the nesting depth, while composing (so deep input stops early, long before Python's stack),
* the number of aliases, while composing,
* the size and depth of the document *with every alias expanded*, computed once per node
  (so a bomb is measured in microseconds, never expanded),
* each scalar: integers must fit in 64 bits and only JSON-like types are accepted.

Each limit has a default generous for real workflows and an environment variable to raise it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import yaml

from amml._exceptions import WorkflowError

#: Integers beyond a signed 64-bit range are refused: no op needs them, and past 4,300 digits
#: Python cannot even format one (``int`` string conversion limit).
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# Longest text of an in-range integer in any YAML 1.1 notation: 64 binary digits plus
# '-0b' and a sign; longer text is refused before it is converted at all.
_MAX_INT_TEXT = 70


@dataclass(frozen=True)
class DocumentLimits:
    """Bounds on one workflow document; :meth:`from_env` reads the ``AMML_MAX_WORKFLOW_*``
    environment variables."""

    max_bytes: int = 1_000_000
    max_depth: int = 64
    max_aliases: int = 1_000
    max_nodes: int = 100_000

    ENV = {"max_bytes": "AMML_MAX_WORKFLOW_BYTES", "max_depth": "AMML_MAX_WORKFLOW_DEPTH",
           "max_aliases": "AMML_MAX_WORKFLOW_ALIASES", "max_nodes": "AMML_MAX_WORKFLOW_NODES"}

    @classmethod
    def from_env(cls) -> DocumentLimits:
        values: dict[str, int] = {}
        for attribute, variable in cls.ENV.items():
            text = os.environ.get(variable)
            if text is None or not text.strip():
                continue
            try:
                value = int(text.strip())
            except ValueError:
                value = 0
            if value < 1:
                raise WorkflowError(f"{variable} must be a positive whole number, got {text!r}")
            values[attribute] = value
        return cls(**values)

    def hint(self, attribute: str) -> str:
        return f"raise the limit with {self.ENV[attribute]}=N (now {getattr(self, attribute)})"


class DocumentProblem(yaml.MarkedYAMLError):
    """A limit or type rule broken at a place in the document. A ``YAMLError``, so code that
    parses a single value with ``yaml.load(text, LimitedLoader)`` (``-p`` overrides) and
    catches YAML errors already catches these; the workflow loader makes it an issue."""

    def __init__(self, message: str, mark: yaml.Mark | None, hint: str | None = None) -> None:
        super().__init__(problem=message, problem_mark=mark)
        self.message = message
        self.mark = mark
        self.hint = hint


class LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with depth and alias counts checked while composing, 64-bit
    integers, and only JSON-like values (a date stays the text it was written as)."""

    def __init__(self, text: str, limits: DocumentLimits | None = None) -> None:
        super().__init__(text)
        self.limits = limits or DocumentLimits.from_env()
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > self.limits.max_aliases:
                raise DocumentProblem(
                    f"more than {self.limits.max_aliases:,} aliases (*name) in one document",
                    self.peek_event().start_mark, self.limits.hint("max_aliases"))
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > self.limits.max_depth:
                raise DocumentProblem(
                    f"nesting deeper than {self.limits.max_depth} levels",
                    self.peek_event().start_mark, self.limits.hint("max_depth"))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node)).replace("_", "")
        if len(text) > _MAX_INT_TEXT:
            raise _int_out_of_range(f"{len(text):,}-character integer", node)
        value = super().construct_yaml_int(node)
        if not INT_MIN <= value <= INT_MAX:
            raise _int_out_of_range(f"integer {text}", node)
        return value

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> str:  # type: ignore[override]
        # A date object is not JSON: the canonical IR, the cache key and the op configs
        # (``val_start: str``) all want the text, exactly as a JSON workflow would give it.
        return str(self.construct_scalar(node))

    def construct_unsupported(self, node: yaml.Node) -> Any:
        raise DocumentProblem(
            f"the YAML type {node.tag.replace('tag:yaml.org,2002:', '!!')} is not allowed "
            f"in a workflow", node.start_mark,
            "values are strings, numbers, booleans, null, lists and mappings")


def _int_out_of_range(what: str, node: yaml.Node) -> DocumentProblem:
    shown = what if len(what) <= 40 else what[:37] + "..."
    return DocumentProblem(f"{shown} is out of range: integers must fit in 64 bits "
                           f"({INT_MIN:,} to {INT_MAX:,})", node.start_mark,
                           "write it as a string (quoted) or as a float (e.g. 1.5e30)")


LimitedLoader.add_constructor("tag:yaml.org,2002:int", LimitedLoader.construct_yaml_int)
LimitedLoader.add_constructor("tag:yaml.org,2002:timestamp",
                              LimitedLoader.construct_yaml_timestamp)
for _tag in ("binary", "set"):
    LimitedLoader.add_constructor(f"tag:yaml.org,2002:{_tag}",
                                  LimitedLoader.construct_unsupported)


def check_expanded(root: yaml.Node, limits: DocumentLimits) -> None:
    """Refuse a document whose aliases make it too big or too deep, or that contains itself.

    Sizes and depths are computed once per node of the composed graph (an alias is a second
    edge to the same node), iteratively: a bomb costs as much as its text, never its expansion.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        children = _children(node)
        if finished:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            if size[key] > limits.max_nodes:
                raise DocumentProblem(
                    f"with its aliases expanded the document has more than "
                    f"{limits.max_nodes:,} values", node.start_mark, limits.hint("max_nodes"))
            if depth[key] > limits.max_depth:
                raise DocumentProblem(
                    f"with its aliases expanded the document nests deeper than "
                    f"{limits.max_depth} levels", node.start_mark, limits.hint("max_depth"))
            continue
        if key in size:
            continue
        if key in on_path:
            raise DocumentProblem("an alias refers to an anchor that contains it "
                                  "(a recursive structure)", node.start_mark,
                                  "a workflow must be a tree: copy the value instead")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in size)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []
