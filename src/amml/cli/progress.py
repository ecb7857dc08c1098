"""A run hook that shows per-step progress with Rich."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from amml.engine.hooks import RunHooks

STYLES = {"ran": ("✓", "green"), "cached": ("↺", "cyan"), "failed": ("✗", "red"),
          "skipped": ("-", "yellow")}


class RichProgress(RunHooks):
    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.task: Any = None
        self.running: set[str] = set()

    def before_run(self, *, run_id: str, workflow: str, steps: list[str], **_: Any) -> None:
        self.console.print(f"[bold]run[/] {run_id} · workflow [bold]{workflow}[/] · "
                           f"{len(steps)} steps")
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total}"),
                                 TimeElapsedColumn(), console=self.console, transient=True)
        self.task = self.progress.add_task("starting", total=len(steps))
        self.progress.start()

    def before_step(self, *, step: str, **_: Any) -> None:
        self.running.add(step)
        self._describe()

    def after_step(self, *, step: str, op: str, status: str, duration_s: float,
                   error: str | None = None, **_: Any) -> None:
        self.running.discard(step)
        mark, style = STYLES.get(status, ("?", "white"))
        timing = f"{duration_s:8.3f}s" if status == "ran" or status == "failed" else " " * 9
        line = f"  [{style}]{mark}[/] {step:<24} [dim]{op:<22}[/] [{style}]{status:<7}[/] {timing}"
        if error and status == "failed":
            line += f"\n      [red]{error}[/]"
        self.console.print(line, highlight=False)
        if self.progress is not None:
            self.progress.advance(self.task)
            self._describe()

    def _describe(self) -> None:
        if self.progress is not None:
            names = ", ".join(sorted(self.running)) or "…"
            self.progress.update(self.task, description=f"running {names}")

    def after_run(self, **_: Any) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
