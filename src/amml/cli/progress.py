"""A run hook that shows per-step progress with Rich, and a training's epochs as they pass.

A step whose config has ``epochs`` and that logs metrics per epoch (``train`` does, through
``ctx.log_metrics(..., step=epoch)``) gets a bar of its own::

    model  epoch 7/10  loss 0.412  val 0.433  ~12s left

and its finished line ends with the last epoch's figures.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from amml.engine.hooks import RunHooks

STYLES = {"ran": ("✓", "green"), "cached": ("↺", "cyan"), "failed": ("✗", "red"),
          "skipped": ("-", "yellow")}

#: metric key -> its short label in the epoch line, in this order
_SHOWN = (("train_loss", "loss"), ("val_loss", "val"))


@dataclass
class Training:
    """What the display knows of one step's training so far."""

    total: int | None
    started: float = field(default_factory=time.perf_counter)
    first: int | None = None  # the first epoch index heard (a resumed training starts later)
    last: int = -1
    metrics: dict[str, float] = field(default_factory=dict)
    task: Any = None

    @property
    def done(self) -> int:
        return 0 if self.first is None else self.last - self.first + 1

    def eta_s(self) -> float | None:
        if not self.total or not self.done or self.done >= self.total:
            return None
        return (time.perf_counter() - self.started) / self.done * (self.total - self.done)

    def describe(self, step: str, *, eta: bool = True) -> str:
        parts = [step, f"epoch {self.done}/{self.total}" if self.total else f"epoch {self.done}"]
        parts += [f"{label} {self.metrics[key]:.4g}" for key, label in _SHOWN
                  if key in self.metrics]
        left = self.eta_s() if eta else None
        if left is not None:
            parts.append(f"~{_duration(left)} left")
        return "  ".join(parts)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


class RichProgress(RunHooks):
    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.task: Any = None
        self.running: set[str] = set()
        self.training: dict[str, Training] = {}
        # epochs are heard from the worker threads while steps finish on the runner's
        self.lock = threading.Lock()

    def before_run(self, *, run_id: str, workflow: str, steps: list[str], **_: Any) -> None:
        self.console.print(f"[bold]run[/] {escape(run_id)} · workflow [bold]{escape(workflow)}[/]"
                           f" · {len(steps)} steps")
        self.progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                                 TextColumn("{task.completed}/{task.total}"),
                                 TimeElapsedColumn(), console=self.console, transient=True)
        self.task = self.progress.add_task("starting", total=len(steps))
        self.progress.start()

    def before_step(self, *, step: str, config: dict[str, Any] | None = None,
                    **_: Any) -> None:
        epochs = (config or {}).get("epochs")
        with self.lock:
            self.running.add(step)
            if isinstance(epochs, int) and not isinstance(epochs, bool):
                self.training[step] = Training(total=epochs)
        self._describe()

    def after_metrics(self, *, step: str, metrics: dict[str, float], index: int,
                      **_: Any) -> None:
        with self.lock:
            training = self.training.get(step)
            # only per-epoch figures: the summary a step logs at index 0 after its last epoch
            # is not an epoch, and a step without 'epochs' has none
            if training is None or index < training.last or not any(
                    key in metrics for key, _label in _SHOWN):
                return
            if training.first is None:
                training.first = index
            training.last = index
            training.metrics.update(metrics)
            text = "  " + training.describe(step)
            if self.progress is None:
                return
            if training.task is None:
                training.task = self.progress.add_task(text, total=training.total)
            self.progress.update(training.task, description=text, completed=training.done)

    def after_step(self, *, step: str, op: str, status: str, duration_s: float,
                   error: str | None = None, **_: Any) -> None:
        with self.lock:
            self.running.discard(step)
            training = self.training.pop(step, None)
        if training is not None and training.task is not None and self.progress is not None:
            self.progress.remove_task(training.task)
        mark, style = STYLES.get(status, ("?", "white"))
        timing = f"{duration_s:8.3f}s" if status == "ran" or status == "failed" else " " * 9
        line = (f"  [{style}]{mark}[/] {escape(f'{step:<24}')} [dim]{escape(f'{op:<22}')}[/] "
                f"[{style}]{status:<7}[/] {timing}")
        if training is not None and training.done:
            # where the training ended, kept on screen once its bar is gone
            line += "  [dim]" + escape(training.describe(step, eta=False).split("  ", 1)[1]) + "[/]"
        if error and status == "failed":
            line += f"\n      [red]{escape(error)}[/]"
        self.console.print(line, highlight=False)
        if self.progress is not None:
            self.progress.advance(self.task)
            self._describe()

    def _describe(self) -> None:
        if self.progress is not None:
            with self.lock:
                names = ", ".join(sorted(self.running)) or "…"
            self.progress.update(self.task, description=f"running {names}")

    def after_run(self, **_: Any) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
