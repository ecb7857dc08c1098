"""Lifecycle hooks: observers of a run (progress display, tracking, later the ledger and
monitoring) hang off the runner instead of being wired into it. Every method takes keyword
arguments only, so new ones can be added without breaking existing hooks.
"""

from __future__ import annotations

from typing import Any


class RunHooks:
    """Subclass and override what you need; every method is a no-op here."""

    def before_run(self, *, run_id: str, workflow: str, steps: list[str], **_: Any) -> None:
        pass

    def before_step(self, *, run_id: str, step: str, op: str, **_: Any) -> None:
        pass

    def after_step(self, *, run_id: str, step: str, op: str, status: str, duration_s: float,
                   error: str | None = None, **_: Any) -> None:
        pass

    def after_metrics(self, *, run_id: str, step: str, metrics: dict[str, float], index: int,
                      **_: Any) -> None:
        """A running step logged ``metrics`` at ``index`` (a training's epoch). Called from
        the worker thread as they are logged, for steps that run in this process; a step in
        another process reports its metrics with ``after_step`` only."""

    def after_run(self, *, run_id: str, status: str, duration_s: float, **_: Any) -> None:
        pass


class HookList(RunHooks):
    def __init__(self, hooks: list[RunHooks] | None = None) -> None:
        self.hooks = list(hooks or [])

    def before_run(self, **kwargs: Any) -> None:
        for hook in self.hooks:
            hook.before_run(**kwargs)

    def before_step(self, **kwargs: Any) -> None:
        for hook in self.hooks:
            hook.before_step(**kwargs)

    def after_step(self, **kwargs: Any) -> None:
        for hook in self.hooks:
            hook.after_step(**kwargs)

    def after_metrics(self, **kwargs: Any) -> None:
        for hook in self.hooks:
            hook.after_metrics(**kwargs)

    def after_run(self, **kwargs: Any) -> None:
        for hook in self.hooks:
            hook.after_run(**kwargs)
