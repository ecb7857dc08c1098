"""Tables of the capabilities that land beside the dashboard (drift events, edge devices,
the federated fleet, labels): found at runtime, shown generically, or an empty state that
says what fills them when their module is not installed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amml.store import Store
from amml.store.dashboard_reads import latest_rows, module_tables, row_count, time_column


@dataclass
class CapabilityTable:
    name: str
    columns: list[str]
    rows: list[dict[str, Any]]
    total: int
    time_column: str | None


@dataclass
class Capability:
    module: str
    available: bool
    tables: list[CapabilityTable] = field(default_factory=list)
    error: str | None = None


def read_capability(store: Store, module_name: str, limit: int = 200) -> Capability:
    try:
        tables = module_tables(module_name)
    except Exception as exc:  # a half-written module must not take the page down
        return Capability(module_name, False, error=f"{type(exc).__name__}: {exc}")
    if tables is None:
        return Capability(module_name, False)
    found = Capability(module_name, True)
    for table in tables:
        try:
            rows = latest_rows(store.metadata, table, limit)
            total = row_count(store.metadata, table)
        except Exception as exc:  # e.g. the store was not migrated to its revision yet
            found.error = f"{table.name}: {type(exc).__name__}: {exc}"
            continue
        found.tables.append(CapabilityTable(table.name, [c.name for c in table.columns],
                                            rows, total, time_column(table)))
    return found
