"""Conformance checks any op or artifact store should pass, ours and third-party alike.

Use them in a plugin's own tests::

    from amml.testing import check_op
    check_op(MyOp)
"""

from __future__ import annotations

import json

from amml._types import ARTIFACT_TYPES
from amml.engine.fingerprint import code_digest
from amml.ops.base import Op
from amml.store.artifacts import ArtifactStore


def check_op(op_cls: type[Op]) -> None:
    """Raise ``AssertionError`` (or the op's own error) if ``op_cls`` breaks the op contract."""
    op_cls.check_declaration()
    assert op_cls.version, f"op '{op_cls.name}' has no version"
    for name, kind in op_cls.outputs.items():
        assert (kind in ARTIFACT_TYPES and kind != "any") or op_cls.code_object is not None, (
            f"op '{op_cls.name}': output '{name}' must name a concrete type, got '{kind}'")
    schema = op_cls.Config.model_json_schema()
    json.dumps(schema)  # the configuration schema must be JSON (it documents YAML fields)
    assert op_cls.Config.model_config.get("extra") == "forbid", (
        f"op '{op_cls.name}': Config must forbid unknown fields (subclass OpConfig)")
    required = set(schema.get("required", []))
    if not required:  # an op with no required field must construct with defaults
        op_cls()
    digest = code_digest(op_cls.fingerprint_target())
    assert len(digest) == 64 and digest == code_digest(op_cls.fingerprint_target())
    assert callable(op_cls.run) and op_cls.run is not Op.run, (
        f"op '{op_cls.name}' does not implement run()")


def check_artifact_store(store: ArtifactStore) -> None:
    """Content addressing, idempotent writes and value round trips on a backend."""
    digest = store.put_bytes(b"amml-conformance")
    assert store.exists(digest) and store.get_bytes(digest) == b"amml-conformance"
    assert store.put_bytes(b"amml-conformance") == digest
    ref = store.save({"check": [1, 2, 3]})
    assert ref.type == "json" and store.load(ref) == {"check": [1, 2, 3]}
    assert store.uri(digest).endswith(digest)
