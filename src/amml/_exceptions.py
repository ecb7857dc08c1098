"""AMML's one exception tree.

::

    AMMLError
    ├── WorkflowError
    │   ├── WorkflowValidationError   (carries a list of ValidationIssue)
    │   └── CronError                 (also a ValueError: a schedule that is not cron)
    ├── OpError
    │   ├── OpNotFoundError               (also an AttributeError)
    │   ├── PluginError
    │   │   ├── PluginClashError
    │   │   └── PluginNotFoundError       (also a LookupError)
    │   ├── StepFailedError
    │   ├── PayloadError                  (also a ValueError: one unreadable source message)
    │   ├── ModelContractError            (a model asked for what its kind does not do)
    │   └── ClientUnavailable             (a federated client outside its availability window)
    ├── StoreError
    │   ├── ArtifactNotFoundError
    │   ├── ArtifactCorruptError          (a stored file does not hash to its name)
    │   ├── RunNotFoundError
    │   ├── RegistryError
    │   │   ├── AliasConflict
    │   │   └── SignatureMismatch         (an alias move to a version of another signature)
    │   ├── LedgerError
    │   ├── ApiKeyError
    │   └── LabelError                (a label, a task or an actual that cannot be stored)
    ├── ServeError
    │   └── BodyError                     (also a ValueError; HTTP 422)
    │       ├── UnsupportedMediaType      (HTTP 415)
    │       └── LimitError                (a request over a server limit: HTTP 413, 422, 503)
    ├── TriggerError                      (a retraining trigger that cannot be evaluated)
    └── ConfigurationError

Every error carries the context a user needs to fix it: the file and line of a workflow, the
step and field, the run id. Modules that raise these re-import them, so
``amml.serve.bodies.BodyError`` and ``amml.BodyError`` are one class.

A few exceptions stay outside the tree on purpose (``tests/test_public_api.py`` lists them and
fails on any other): internal control flow that never reaches a user
(``amml.lang.params.ParamProblem`` becomes a :class:`ValidationIssue` or a CLI message;
``amml.serve.app.Reject`` an HTTP error response; ``amml.dashboard.app.LoginRequired`` and
``Forbidden`` a redirect or a 401/403 page), and ``amml.edge.runner.EdgeError``, because the
edge runner imports nothing of AMML (it is installed alone on devices).
"""

from __future__ import annotations

from dataclasses import dataclass, field


class AMMLError(Exception):
    """Base class of every error AMML raises on purpose."""


class ConfigurationError(AMMLError):
    """The environment or a setting is wrong (bad store URL, missing optional dependency)."""


@dataclass(frozen=True)
class ValidationIssue:
    """One problem found in a workflow, located as precisely as the front-end allows."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    step: str | None = None
    field: str | None = None
    hint: str | None = None

    def location(self) -> str:
        parts = [self.file or "<workflow>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def format(self) -> str:
        where = []
        if self.step:
            where.append(f"step '{self.step}'")
        if self.field:
            where.append(f"field '{self.field}'")
        head = f"{self.location()}: " + (", ".join(where) + ": " if where else "")
        text = head + self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class WorkflowError(AMMLError):
    """A workflow cannot be loaded or built."""


@dataclass
class WorkflowValidationError(WorkflowError):
    """A workflow is invalid; ``issues`` lists every problem found, in document order."""

    issues: list[ValidationIssue] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.__str__())

    def __str__(self) -> str:
        count = len(self.issues)
        noun = "problem" if count == 1 else "problems"
        body = "\n".join(issue.format() for issue in self.issues)
        return f"invalid workflow ({count} {noun}):\n{body}"


class CronError(WorkflowError, ValueError):
    """A schedule that is not a valid five-field cron expression (also a ``ValueError``, which
    callers of the cron parser caught before it joined the tree)."""


class OpError(AMMLError):
    """An op is missing, misdeclared or failed."""


class OpNotFoundError(OpError, AttributeError):
    """No op is registered under the requested name (also an ``AttributeError``, since
    ``amml.ops.NAME`` looks ops up by attribute)."""


class PluginError(OpError):
    """A plugin (op, detector, model kind, executor) is missing or defined twice."""


class PluginClashError(PluginError):
    """Two definitions claim one name; the message names both."""


class PluginNotFoundError(PluginError, LookupError):
    """Nothing is registered under the requested name; the message lists what is."""


class StepFailedError(OpError):
    """A step raised while running; the run is marked failed."""

    def __init__(self, step: str, op: str, message: str, run_id: str | None = None) -> None:
        self.step, self.op, self.run_id = step, op, run_id
        super().__init__(f"step '{step}' (op '{op}') failed: {message}")


class PayloadError(OpError, ValueError):
    """A source message that cannot be read; ``problem`` names the kind for the quarantine
    report. Also a ``ValueError``, which the parsers around it have always caught."""

    def __init__(self, message: str, problem: str = "malformed_payload") -> None:
        super().__init__(message)
        self.problem = problem


class ModelContractError(OpError):
    """A model was asked for something its kind does not do (yet), or given bad weights."""


class ClientUnavailable(OpError):
    """A federated client is outside its availability window: it declines this round."""


class StoreError(AMMLError):
    """The metadata or artifact store failed or holds something unexpected."""


class ArtifactNotFoundError(StoreError):
    """No artifact with this digest (or prefix) is stored."""


class ArtifactCorruptError(StoreError):
    """A stored artifact's bytes do not hash to its name (overwritten, truncated, empty). The
    file has been moved aside (``quarantined``, when the backend can), so the next run that
    produces it writes it again."""

    def __init__(self, message: str, *, digest: str = "", quarantined: str | None = None) -> None:
        super().__init__(message)
        self.digest, self.quarantined = digest, quarantined


class RunNotFoundError(StoreError):
    """No run with this id (or prefix) is recorded."""


class RegistryError(StoreError):
    """A model, version or alias does not exist, or a registry rule was broken."""


class AliasConflict(RegistryError):
    """A compare-and-set alias move found the alias moved by someone else meanwhile."""


class SignatureMismatch(RegistryError):
    """An alias would move to a version whose signature differs from its current one's;
    ``differences`` lists them."""

    def __init__(self, message: str, differences: list[str]) -> None:
        super().__init__(message)
        self.differences = differences


class LedgerError(StoreError):
    """The ledger is broken, or an entry asked for does not exist."""


class ApiKeyError(StoreError):
    """An API key does not exist, or a key request is invalid."""


class LabelError(StoreError):
    """A label, a task or an actual that cannot be stored as given."""


class ServeError(AMMLError):
    """A model cannot be served (not found, failed to load, failed its smoke test), or a
    request cannot be answered."""


class BodyError(ServeError, ValueError):
    """A body the model cannot take; the message names the problem (HTTP 422 or 415). Also a
    ``ValueError``, since it is raised from inside value parsing."""

    status = 422


class UnsupportedMediaType(BodyError):
    """A body in a media type the server does not read."""

    status = 415


class LimitError(BodyError):
    """A request over one of the server's limits; ``limit`` names it (``max_body_bytes``...),
    ``status`` is the HTTP answer (413, 422 or 503). The message says which ``amml serve``
    option moves the limit."""

    def __init__(self, message: str, limit: str, status: int, maximum: int) -> None:
        option = "--" + limit.replace("_", "-")
        super().__init__(f"{message} ({limit}; amml serve {option})")
        self.limit, self.status, self.maximum = limit, status, maximum

    def to_json(self) -> dict[str, object]:
        return {"detail": str(self), "limit": self.limit, "max": self.maximum}


class TriggerError(AMMLError):
    """A trigger that cannot be evaluated (its source is unreachable, labels are missing)."""
