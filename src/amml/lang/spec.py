"""What the language needs to know about an op, without importing the op layer.

The validator checks a workflow against an :class:`OpCatalog`; :mod:`amml.ops.registry`
provides the real one. Keeping the protocol here lets ``lang`` sit below ``ops``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel


@dataclass(frozen=True)
class Input:
    """An op's input port.

    ``many=True`` takes a list of references (for ops that combine several series).
    """

    type: str = "table"
    required: bool = True
    many: bool = False
    doc: str = ""


class OpSpec(Protocol):
    name: str
    version: str
    inputs: Mapping[str, Input]
    outputs: Mapping[str, str]
    Config: type[BaseModel]


class OpCatalog(Protocol):
    def find(self, name: str) -> OpSpec | None: ...

    def names(self) -> Iterable[str]: ...
