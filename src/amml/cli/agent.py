"""``amml agent``: run workflows when their triggers (cron, drift, labels, data) fire.

``amml agent retrain.yaml other.yaml`` keeps evaluating every ``--interval`` seconds;
``--once`` evaluates once, runs what fired and exits (for tests and cron); ``--promote
NAME`` applies the promotion policy to NAME after each successful run; ``--history``
prints the recorded trigger runs (why each run started, attempts, status). The agent also
fills the label queue on each evaluation (``--label-every``, ``--label-window``;
``--no-label-queue`` turns it off) and says when it queued new tasks. Exit codes: 0
done, 1 a triggered run failed after its retries (``--once``), 2 a malformed command line
or workflow.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from amml.cli._options import HomeOption, JsonOption


def attach(main: typer.Typer) -> None:
    main.command("agent")(agent)


def agent(
    files: Annotated[list[str] | None, typer.Argument(
        help="Workflows with 'triggers:' (.yaml, or .py[:NAME]).")] = None,
    once: Annotated[bool, typer.Option(
        "--once", help="Evaluate the triggers once, run what fired, exit.")] = False,
    interval: Annotated[float, typer.Option(
        help="Seconds between evaluations.", min=0.05)] = 10.0,
    retries: Annotated[int, typer.Option(help="Retries of a failed run.", min=0)] = 2,
    backoff: Annotated[float, typer.Option(
        help="Seconds before the first retry; doubles each time.", min=0.0)] = 1.0,
    history: Annotated[bool, typer.Option(
        "--history", help="Print the recorded trigger runs (of FILES' workflows, or all) "
        "and exit.")] = False,
    promote: Annotated[list[str] | None, typer.Option(
        "--promote", help="After a triggered run succeeds, apply the promotion policy to "
        "this model (challenger vs champion; repeatable).")] = None,
    min_points: Annotated[int, typer.Option(
        help="With --promote: labelled points the policy needs.", min=1)] = 50,
    policy_window: Annotated[float | None, typer.Option(
        help="With --promote: judge on the requests served in the last N seconds "
        "(default: all).", min=1.0)] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="NAME=VALUE for every workflow (repeatable).")] = None,
    label_queue: Annotated[bool, typer.Option(
        "--label-queue/--no-label-queue", help="Fill the label queue (alarms, uncertain "
        "windows, drift events) on each evaluation.")] = True,
    label_every: Annotated[float, typer.Option(
        help="Seconds between label-queue refreshes while watching (0: every evaluation; "
        "--once always refreshes).", min=0.0)] = 60.0,
    label_window: Annotated[float, typer.Option(
        help="Queue the alarms and uncertain windows of the answers served in the last N "
        "seconds (drift events: every new one).", min=1.0)] = 3600.0,
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Run workflows when their triggers fire: one run at a time per workflow, failed runs
    retried with backoff, each run's reason recorded."""
    from amml.cli.main import _compile, _fail, _open_store, err, out
    from amml.engine.agent import Agent
    from amml.store.operations import OperationsRecords

    if history:
        names = [_compile(f, param).ir.name for f in files or []]
        store = _open_store(home, read_only=True)
        try:
            rows = [r for r in OperationsRecords(store).runs()
                    if not names or r["workflow"] in names]
        finally:
            store.close()
        _print_history(rows, json_output)
        return
    if not files:
        raise _fail("name at least one workflow with 'triggers:'", 2)
    workflows = [_compile(f, param) for f in files]
    store = _open_store(home)
    try:
        try:
            runner = Agent(store, workflows, retries=retries, backoff_s=backoff,
                           on_success=_promoter(store, promote, min_points, policy_window)
                           if promote
                           else None, label_queue=label_queue, label_window_s=label_window,
                           label_every_s=label_every,
                           on_label_refresh=_print_refresh_json if json_output and not once
                           else _print_refresh)
        except Exception as exc:
            raise _fail(str(exc), 2) from None
        if once:
            outcomes = runner.run_once()
            if json_output:
                out.print_json(json.dumps([o.to_json() for o in outcomes]))
            else:
                for outcome in outcomes:
                    _print_outcome(outcome)
            if any(o.status in ("failed", "error") for o in outcomes):
                raise typer.Exit(1)
            return
        err.print(f"amml agent: watching {', '.join(w.ir.name for w in workflows)} every "
                  f"{interval:g}s (Ctrl-C stops)")
        stop = threading.Event()
        try:
            runner.run_forever(interval_s=interval, stop=stop,
                               on_outcome=_print_json if json_output else _print_outcome)
        except KeyboardInterrupt:
            stop.set()
    finally:
        store.close()


def _promoter(store, models: list[str], min_points: int, window_s: float | None):
    """After a successful run: the promotion policy on each model, its decisions in words."""
    from amml.registry.policy import PromotionPolicy, apply

    policy = PromotionPolicy(min_points=min_points, window_s=window_s)

    def promote(_workflow, _run_id) -> str:
        said = []
        for model in models:
            decision = apply(store, model, policy=policy, actor="amml agent")
            said.append(f"{model}: {'promoted' if decision.promoted else 'not promoted'} "
                        f"({decision.reason})")
        return "; ".join(said)

    return promote


def _print_refresh(refresh) -> None:
    """A label-queue refresh that queued something, in words (on stderr: stdout keeps the
    outcomes)."""
    from amml.cli.main import err

    if refresh.new:
        kinds = ", ".join(f"{k} {n}" for k, n in refresh.queued.items() if n)
        err.print(f"label queue: {refresh.new} new task(s) ({kinds} in the queue from the "
                  f"last {refresh.at - refresh.since:g}s and new drift events)",
                  highlight=False)


def _print_refresh_json(refresh) -> None:
    from amml.cli.main import out

    if refresh.new:
        out.print(json.dumps({"label_queue": refresh.to_json()}), soft_wrap=True,
                  highlight=False)


def _print_json(outcome) -> None:
    from amml.cli.main import out

    if outcome.fired or outcome.status != "idle":  # one line per run, not per evaluation
        out.print(json.dumps(outcome.to_json()), soft_wrap=True, highlight=False)


def _print_outcome(outcome) -> None:
    from amml.cli.main import err, out

    if not outcome.fired and outcome.status == "idle":
        return
    if outcome.status == "error":
        err.print(f"[red]{outcome.workflow}[/]: {escape(outcome.error or '')}", highlight=False)
        return
    why = escape("; ".join(outcome.reasons))
    if outcome.status == "busy":
        out.print(f"{outcome.workflow}: fired ({why}) but another agent is running it",
                  highlight=False)
        return
    colour = "green" if outcome.status == "succeeded" else "red"
    tail = f" — {escape(outcome.error)}" if outcome.error and outcome.status == "failed" else ""
    out.print(f"{outcome.workflow}: [{colour}]{outcome.status}[/] after {outcome.attempts} "
              f"attempt(s), run {outcome.run_id or '-'} ({why}){tail}", highlight=False)
    if outcome.note:
        out.print(f"  {escape(outcome.note)}", highlight=False)


def _print_history(rows: list[dict], json_output: bool) -> None:
    from amml.cli.main import out

    if json_output:
        out.print_json(json.dumps(rows, default=str))
        return
    if not rows:
        out.print("no triggered runs recorded yet")
        return
    table = Table(title="triggered runs", title_justify="left")
    for column in ("started", "workflow", "attempt", "status", "run", "why"):
        table.add_column(column)
    for row in rows:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["started_at"]))
        table.add_row(started, row["workflow"], str(row["attempt"]), row["status"],
                      row["run_id"] or "", row["reason"])
    out.print(table)
