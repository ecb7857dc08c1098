"""The model registry's data: versions with lineage, metrics and signature; aliases moved
atomically with an audit trail of who, when and why.

A model reference is ``NAME`` (newest version), ``NAME@3`` (version 3) or ``NAME@champion``
(whatever the alias points at). Promotion rules live in :mod:`amml.registry`.

>>> import tempfile
>>> from amml.store import open_store
>>> from amml.ops.models.forecaster import Forecaster
>>> registry = ModelRegistry(open_store(tempfile.mkdtemp()))
>>> v1 = registry.register("oil", Forecaster("naive", 24, 6), metrics={"mse": 0.9})
>>> v2 = registry.register("oil", Forecaster("seasonal_naive", 24, 6), metrics={"mse": 0.5})
>>> registry.set_alias("oil", "champion", 2, actor="ana", reason="better mse")
>>> registry.resolve("oil@champion").version, registry.resolve("oil").version
(2, 2)
>>> [(e["from_version"], e["to_version"], e["actor"]) for e in registry.alias_history("oil")]
[(None, 2, 'ana')]
"""

from __future__ import annotations

import getpass
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from amml._exceptions import AliasConflict, RegistryError, SignatureMismatch
from amml.store import Store
from amml.store.artifacts import ArtifactRef
from amml.store.code_version import CodeVersion, detect
from amml.store.metadata.schema import alias_events, model_aliases, model_versions
from amml.store.model_names import ALIAS, NAME

_ATTEMPTS = 50


class _Any:
    def __repr__(self) -> str:
        return "ANY"


#: ``set_alias(..., expect=ANY)`` (the default): move the alias wherever it points now.
ANY: Any = _Any()

#: The signature fields that decide which question a model answers: a client of an alias
#: sends ``columns`` over ``lookback`` rows at ``freq`` and reads ``horizon`` rows of
#: ``outputs``. Versions that differ in any of them are not interchangeable behind one alias,
#: and their metrics are not comparable (an MSE over 96 steps against one over 336).
SIGNATURE_FIELDS = ("columns", "outputs", "lookback", "horizon", "freq")


def _same_freq(a: Any, b: Any) -> bool:
    if str(a) == str(b):
        return True
    from pandas.tseries.frequencies import to_offset

    try:  # "h" and "1h", "H" and "h" are one frequency
        return bool(to_offset(str(a)) == to_offset(str(b)))
    except (ValueError, TypeError):
        return False


def signature_differences(current: dict[str, Any], candidate: dict[str, Any]) -> list[str]:
    """How ``candidate``'s signature differs from ``current``'s in :data:`SIGNATURE_FIELDS`,
    one ``"field: current → candidate"`` line each. A field either side does not record
    (a version registered without a signature) cannot be compared and is not reported.

    >>> signature_differences({"horizon": 336, "columns": ["a", "OT"], "freq": "h"},
    ...                       {"horizon": 96, "columns": ["OT"], "freq": "1h"})
    ['columns: [a, OT] → [OT]', 'horizon: 336 → 96']
    """
    found = []
    for name in SIGNATURE_FIELDS:
        a, b = current.get(name), candidate.get(name)
        if a is None or b is None:
            continue
        if isinstance(a, list | tuple) or isinstance(b, list | tuple):
            if list(map(str, a)) != list(map(str, b)):
                found.append(f"{name}: [{', '.join(map(str, a))}] → [{', '.join(map(str, b))}]")
        elif name == "freq":
            if not _same_freq(a, b):
                found.append(f"freq: {a} → {b}")
        elif str(a) != str(b):
            found.append(f"{name}: {a} → {b}")
    return found


def current_actor() -> str:
    """Who is acting: ``AMML_USER``, else the login name."""
    try:
        return os.environ.get("AMML_USER") or getpass.getuser()
    except Exception:
        return "unknown"


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    artifact_digest: str
    artifact_type: str
    run_id: str | None
    step_name: str | None
    metrics: dict[str, Any]
    signature: dict[str, Any]
    description: str
    created_at: float
    created_by: str
    aliases: list[str] = field(default_factory=list)
    #: the code behind the version: its run's (see ``ModelRegistry.register``)
    code_version: CodeVersion = field(default_factory=CodeVersion)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "artifact": self.artifact_digest,
                "artifact_type": self.artifact_type, "run_id": self.run_id,
                "step": self.step_name, "metrics": self.metrics, "signature": self.signature,
                "description": self.description, "created_at": self.created_at,
                "created_by": self.created_by, "aliases": self.aliases,
                "code_version": self.code_version.to_json()}


class ModelRegistry:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.metadata.engine

    # -- writing ---------------------------------------------------------------------------
    def register(self, name: str, model: Any, *, metrics: dict[str, Any] | None = None,
                 signature: dict[str, Any] | None = None, run_id: str | None = None,
                 step_name: str | None = None, description: str = "",
                 actor: str | None = None) -> ModelVersion:
        """Store ``model`` (a model object, or the digest of a stored model artifact) as the
        next version of ``name``. Versions count 1, 2, 3... without gaps, also under
        concurrent writers; deleted versions keep their numbers.

        The version carries the code version of run ``run_id`` as recorded when the run
        started (so the ``register`` op passes nothing extra); without a run, that of the
        current folder (git commit, dirty flag) and the AMML version."""
        if not NAME.match(name):
            raise RegistryError(f"invalid model name '{name}' (letters, digits, '_', '-', '.')")
        if isinstance(model, str):
            digest, kind = model, "model"
            if not self.store.artifacts.exists(digest):
                raise RegistryError(f"artifact {digest[:12]} is not in the artifact store")
        else:
            ref = self.store.artifacts.save(model, "model")
            digest, kind = ref.digest, ref.type
            self.store.metadata.write_now("artifacts", [dict(
                digest=ref.digest, type=ref.type, size=ref.size,
                uri=self.store.artifacts.uri(ref.digest), created_at=time.time())])
        row = dict(name=name, artifact_digest=digest, artifact_type=kind, run_id=run_id,
                   step_name=step_name, metrics=json.dumps(metrics or {}, sort_keys=True),
                   signature=json.dumps(signature or {}, sort_keys=True),
                   description=description, created_at=time.time(),
                   created_by=actor or current_actor(), deleted_at=None,
                   **self._code_version(run_id).columns())
        for attempt in range(_ATTEMPTS):  # the primary key (name, version) settles races
            try:
                with self.engine.begin() as conn:
                    newest = conn.execute(select(func.max(model_versions.c.version))
                                          .where(model_versions.c.name == name)).scalar()
                    version = (newest or 0) + 1
                    conn.execute(insert(model_versions), [{**row, "version": version}])
            except IntegrityError:  # another writer took this number: roll back, re-read
                time.sleep(0.001 * (attempt + 1))
                continue
            return self.get(name, version)
        raise RegistryError(f"could not register a version of '{name}': too many writers")

    def _code_version(self, run_id: str | None) -> CodeVersion:
        recorded = self.store.metadata.code_version(run_id) if run_id else None
        return recorded if recorded is not None else detect()

    def set_alias(self, name: str, alias: str, version: int, *, actor: str | None = None,
                  reason: str = "", expect: Any = ANY, same_signature: bool = False
                  ) -> int | None:
        """Point ``alias`` at ``version`` in one transaction, recording the move; returns the
        version it pointed at before (None: it is new).

        ``expect`` makes the move a compare-and-set: it happens only if the alias points at
        ``expect`` now (None: the alias must not exist yet), else :class:`AliasConflict`.
        With ``same_signature`` a version whose signature differs from the current holder's
        (see :func:`signature_differences`) is refused with :class:`SignatureMismatch`:
        whoever follows the alias would get answers to another question. ``promote`` and
        ``amml models alias`` ask for it unless forced, and so does the ``register`` op for
        every alias but ``challenger`` (the try-out slot every run moves) unless ``force``.
        """
        if not ALIAS.match(alias):
            raise RegistryError(f"invalid alias '{alias}' (a letter, then letters, digits, "
                                "'_' or '-')")
        version = int(version)
        for attempt in range(_ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    # Lock order everywhere: the version row, then the alias row. The UPDATE
                    # takes the row lock on PostgreSQL and the write lock on SQLite, so
                    # nothing can retire the version or move the alias until we commit.
                    live = conn.execute(update(model_versions).where(
                        model_versions.c.name == name, model_versions.c.version == version,
                        model_versions.c.deleted_at.is_(None))
                        .values(deleted_at=model_versions.c.deleted_at)).rowcount
                    if not live:
                        raise self._missing(name, version)
                    where = and_(model_aliases.c.name == name, model_aliases.c.alias == alias)
                    previous = conn.execute(select(model_aliases.c.version).where(where)
                                            .with_for_update()).scalar()
                    if expect is not ANY and previous != expect:
                        raise AliasConflict(
                            f"alias '{alias}' of '{name}' points at "
                            f"{'nothing' if previous is None else f'version {previous}'}, not "
                            f"{'nothing' if expect is None else f'version {expect}'}: "
                            "it moved meanwhile")
                    if previous is not None and previous != version and same_signature:
                        # checked inside the transaction: the holder cannot change under us
                        self._check_signature(conn, name, alias, int(previous), version)
                    now = time.time()
                    if previous is None:
                        conn.execute(insert(model_aliases), [dict(
                            name=name, alias=alias, version=version, updated_at=now)])
                    else:
                        conn.execute(update(model_aliases).where(where)
                                     .values(version=version, updated_at=now))
                    conn.execute(insert(alias_events), [dict(
                        name=name, alias=alias, from_version=previous, to_version=version,
                        actor=actor or current_actor(), reason=reason, at=now)])
            except IntegrityError:  # two writers created the alias at once: re-read
                time.sleep(0.001 * (attempt + 1))
                continue
            return None if previous is None else int(previous)
        raise RegistryError(f"could not move alias '{alias}' of '{name}': too many writers")

    @staticmethod
    def _check_signature(conn: Any, name: str, alias: str, held: int, version: int) -> None:
        rows = dict(conn.execute(select(model_versions.c.version, model_versions.c.signature)
                                 .where(model_versions.c.name == name,
                                        model_versions.c.version.in_([held, version]))).all())
        differences = signature_differences(json.loads(rows.get(held) or "{}"),
                                            json.loads(rows.get(version) or "{}"))
        if differences:
            raise SignatureMismatch(
                f"{name}@{version} has another signature than {name}@{held}, which alias "
                f"'{alias}' points at ({'; '.join(differences)}): its clients would get "
                "answers to another question; use a new model name, or force (--force)",
                differences)

    def remove_alias(self, name: str, alias: str, *, actor: str | None = None,
                     reason: str = "") -> int:
        """Remove ``alias`` (recorded in the audit trail); returns the version it pointed at."""
        with self.engine.begin() as conn:
            where = and_(model_aliases.c.name == name, model_aliases.c.alias == alias)
            # lock first (the row on PostgreSQL, the database on SQLite): the read is current
            locked = conn.execute(update(model_aliases).where(where)
                                  .values(updated_at=model_aliases.c.updated_at)).rowcount
            previous = conn.execute(select(model_aliases.c.version).where(where)).scalar()
            if not locked or previous is None:
                raise RegistryError(f"model '{name}' has no alias '{alias}'"
                                    + self._alias_hint(conn, name))
            conn.execute(delete(model_aliases).where(where))
            conn.execute(insert(alias_events), [dict(
                name=name, alias=alias, from_version=previous, to_version=None,
                actor=actor or current_actor(), reason=reason, at=time.time())])
        return int(previous)

    def delete(self, name: str, version: int, *, actor: str | None = None,
               reason: str = "", force: bool = False) -> None:
        """Retire a version (kept for lineage, hidden from listings and resolution). A version
        that an alias points at is refused unless ``force``, which removes those aliases (in
        the same transaction, each removal in the audit trail)."""
        version = int(version)
        with self.engine.begin() as conn:
            retired = conn.execute(update(model_versions).where(
                model_versions.c.name == name, model_versions.c.version == version,
                model_versions.c.deleted_at.is_(None)).values(deleted_at=time.time())).rowcount
            if not retired:
                raise self._missing(name, version)
            aliases = [a for (a,) in conn.execute(select(model_aliases.c.alias).where(
                model_aliases.c.name == name, model_aliases.c.version == version)
                .order_by(model_aliases.c.alias).with_for_update())]
            if aliases and not force:
                raise RegistryError(f"{name}@{version} is still aliased as "
                                    f"{', '.join(aliases)}; move those aliases first "
                                    "(or force)")
            now = time.time()
            for alias in aliases:
                conn.execute(delete(model_aliases).where(model_aliases.c.name == name,
                                                         model_aliases.c.alias == alias))
                conn.execute(insert(alias_events), [dict(
                    name=name, alias=alias, from_version=version, to_version=None,
                    actor=actor or current_actor(),
                    reason=f"deleting version {version}" + (f": {reason}" if reason else ""),
                    at=now)])

    def _missing(self, name: str, version: int) -> RegistryError:
        known = [v.version for v in self.versions(name)]
        return RegistryError(f"model '{name}' has no version {version}"
                             + (f" (versions: {_ranges(known)})" if known else
                                " (no such model)"))

    @staticmethod
    def _alias_hint(conn: Any, name: str) -> str:
        names = [a for (a,) in conn.execute(select(model_aliases.c.alias).where(
            model_aliases.c.name == name).order_by(model_aliases.c.alias))]
        return f" (aliases: {', '.join(names)})" if names else ""

    # -- reading ---------------------------------------------------------------------------
    def _aliases(self, name: str) -> dict[int, list[str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(model_aliases.c.alias, model_aliases.c.version)
                                .where(model_aliases.c.name == name)
                                .order_by(model_aliases.c.alias)).all()
        found: dict[int, list[str]] = {}
        for alias, version in rows:
            found.setdefault(int(version), []).append(alias)
        return found

    def _version(self, row: Any, aliases: dict[int, list[str]]) -> ModelVersion:
        return ModelVersion(row.name, int(row.version), row.artifact_digest, row.artifact_type,
                            row.run_id, row.step_name, json.loads(row.metrics),
                            json.loads(row.signature), row.description, row.created_at,
                            row.created_by, aliases.get(int(row.version), []),
                            CodeVersion.from_columns(row._mapping))

    def get(self, name: str, version: int) -> ModelVersion:
        with self.engine.connect() as conn:
            row = conn.execute(select(model_versions).where(
                model_versions.c.name == name, model_versions.c.version == int(version),
                model_versions.c.deleted_at.is_(None))).first()
        if row is None:
            raise self._missing(name, int(version))
        return self._version(row, self._aliases(name))

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        query = select(model_versions).where(model_versions.c.deleted_at.is_(None))
        if name is not None:
            query = query.where(model_versions.c.name == name)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(model_versions.c.name,
                                               model_versions.c.version)).all()
        aliases: dict[str, dict[int, list[str]]] = {}
        out = []
        for row in rows:
            if row.name not in aliases:
                aliases[row.name] = self._aliases(row.name)
            out.append(self._version(row, aliases[row.name]))
        return out

    def aliases(self, name: str) -> dict[str, int]:
        """``{alias: version}`` of a model."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(model_aliases.c.alias, model_aliases.c.version)
                                .where(model_aliases.c.name == name)
                                .order_by(model_aliases.c.alias)).all()
        return {alias: int(version) for alias, version in rows}

    def names(self) -> list[str]:
        """The models with at least one live version, sorted."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(model_versions.c.name).distinct().where(
                model_versions.c.deleted_at.is_(None)).order_by(model_versions.c.name))
                .scalars())

    def alias_version(self, name: str, alias: str) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(select(model_aliases.c.version).where(
                model_aliases.c.name == name, model_aliases.c.alias == alias)).scalar()

    def latest_version(self, name: str) -> int | None:
        """The newest live version of ``name`` (one small query: servers poll it)."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(model_versions.c.version)).where(
                model_versions.c.name == name, model_versions.c.deleted_at.is_(None))).scalar()

    def resolve(self, reference: str) -> ModelVersion:
        """``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS`` to a version."""
        name, at, pointer = reference.partition("@")
        if not name or (at and not pointer):
            raise RegistryError(f"invalid model reference '{reference}' (NAME, NAME@VERSION "
                                "or NAME@ALIAS)")
        if not pointer:
            versions = self.versions(name)
            if not versions:
                raise RegistryError(f"no model named '{name}'" + self._names_hint())
            return versions[-1]
        if pointer.isdigit():
            return self.get(name, int(pointer))
        version = self.alias_version(name, pointer)
        if version is None:
            if not self.versions(name):
                raise RegistryError(f"no model named '{name}'" + self._names_hint())
            with self.engine.connect() as conn:
                hint = self._alias_hint(conn, name)
            raise RegistryError(f"model '{name}' has no alias '{pointer}'"
                                + (hint or " (it has no aliases)"))
        return self.get(name, version)

    def _names_hint(self) -> str:
        names = self.names()
        if not names:
            return " (no models registered yet)"
        return f" (models: {', '.join(names[:10])}{', ...' if len(names) > 10 else ''})"

    def alias_history(self, name: str, alias: str | None = None) -> list[dict[str, Any]]:
        query = select(alias_events).where(alias_events.c.name == name)
        if alias is not None:
            query = query.where(alias_events.c.alias == alias)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(alias_events.c.id))]

    def load(self, version: ModelVersion) -> Any:
        """The model object of a version (rebuilt from safetensors + JSON, never pickle)."""
        info = self.store.metadata.artifact_info([version.artifact_digest]).get(
            version.artifact_digest)
        size = info["size"] if info else 0
        return self.store.artifacts.load(ArtifactRef(version.artifact_digest,
                                                     version.artifact_type, size))


def _ranges(numbers: list[int]) -> str:
    """``[1, 2, 3, 5]`` as ``1-3, 5``.

    >>> _ranges([1, 2, 3, 5, 7, 8])
    '1-3, 5, 7-8'
    """
    parts: list[str] = []
    for number in sorted(numbers):
        if parts and parts[-1].split("-")[-1] == str(number - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{number}"
        else:
            parts.append(str(number))
    return ", ".join(parts)
