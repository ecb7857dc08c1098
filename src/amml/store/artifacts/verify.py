"""Check every stored artifact against its name (``amml store verify [--repair]``).

Every file under the artifact store is re-hashed in a streaming pass, and every artifact a
cache entry names is looked for (missing: a cached step whose output is gone). ``repair=True``
moves the bad files aside to ``quarantine/`` and deletes the cache entries that name a bad or
missing artifact, so the next run rebuilds whatever produced them; the store then verifies
clean. Artifacts that only old runs' records name (no cache entry) are counted as
``unavailable``, not as damage: nothing will trust them, and a run that needs them rebuilds
them. Reads check digests anyway; this finds damage before a run does, and in artifacts no
run reads any more.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from amml._exceptions import StoreError

if TYPE_CHECKING:
    from amml.store import Store


@dataclass(frozen=True)
class Finding:
    """One bad artifact: ``problem`` is ``corrupt``, ``empty`` or ``missing``."""

    digest: str
    problem: str
    quarantined: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "problem": self.problem, "quarantined": self.quarantined}


@dataclass
class VerifyReport:
    checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    repaired: bool = False
    cache_entries_dropped: int = 0
    unavailable: int = 0  # recorded by old runs, not stored, named by no cache entry

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "repaired": self.repaired,
                "cache_entries_dropped": self.cache_entries_dropped,
                "unavailable": self.unavailable,
                "problems": [f.to_json() for f in self.findings]}


def verify_store(store: Store, *, repair: bool = False) -> VerifyReport:
    """Re-hash every stored artifact, look for every recorded one; repair when asked."""
    artifacts = store.artifacts
    report = VerifyReport(repaired=repair)
    stored = set()
    for digest in artifacts.digests():
        stored.add(digest)
        report.checked += 1
        status = artifacts.check(digest, quarantine=repair)
        if status != "ok":
            report.findings.append(Finding(digest, status, quarantined=repair))
    recorded, cached = _recorded(store)
    for digest in sorted(cached - stored):
        report.findings.append(Finding(digest, "missing"))
    report.unavailable = len(recorded - stored - cached)
    if repair and report.findings:
        report.cache_entries_dropped = _drop_cache_entries(
            store, [f.digest for f in report.findings])
    return report


def _recorded(store: Store) -> tuple[set[str], set[str]]:
    """Digests runs recorded writing, and digests the cache entries name."""
    if store.metadata is None:
        return set(), set()
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from amml.store.metadata import schema

    meta = store.metadata
    meta.flush()
    cached: set[str] = set()
    try:
        with meta.engine.connect() as conn:
            recorded = {row[0] for row in conn.execute(select(schema.artifacts.c.digest))}
            for (outputs,) in conn.execute(select(schema.cache_entries.c.outputs)):
                cached.update(ref["digest"] for ref in json.loads(outputs).values())
    except SQLAlchemyError as exc:
        raise StoreError(f"metadata store {meta.display_url}: cannot list artifacts "
                         f"({type(exc).__name__})") from None
    return recorded, cached


def _drop_cache_entries(store: Store, digests: list[str]) -> int:
    """Delete the cache entries whose outputs name one of ``digests``; how many went."""
    if store.metadata is None:
        return 0
    from sqlalchemy import delete, or_
    from sqlalchemy.exc import SQLAlchemyError

    from amml.store.metadata import schema

    table = schema.cache_entries
    meta = store.metadata
    dropped = 0
    try:
        with meta.engine.begin() as conn:
            # outputs is JSON text holding full 64-hex digests: a substring match is exact
            for start in range(0, len(digests), 100):
                chunk = digests[start:start + 100]
                result = conn.execute(delete(table).where(
                    or_(*(table.c.outputs.contains(d) for d in chunk))))
                dropped += result.rowcount or 0
    except SQLAlchemyError as exc:
        raise StoreError(f"metadata store {meta.display_url}: cannot drop cache entries "
                         f"({type(exc).__name__})") from None
    return dropped
