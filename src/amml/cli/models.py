"""``amml models``: list, show, alias, promote, delete registered model versions, and write
a version's model card (``amml models card NAME@ALIAS --out DIR``).

References are ``NAME`` (newest version), ``NAME@3`` or ``NAME@champion``. Alias moves and
promotions are recorded with who (``AMML_USER`` or the login name), when and why; ``amml
models history NAME`` shows that audit trail. Exit codes: 0 done, 1 unknown model, version or
alias, or a promotion the rule refused; 2 a malformed command line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from amml._exceptions import AMMLError
from amml.cli._options import HomeOption, JsonOption

app = typer.Typer(name="models", no_args_is_help=True,
                  help="Model registry: versions, aliases (champion, challenger...), promotion.")


def attach(main: typer.Typer) -> None:
    main.add_typer(app, name="models")


ReasonOption = Annotated[str, typer.Option("--reason", help="Why: kept in the audit trail.")]
NameArg = Annotated[str, typer.Argument(help="Model name.")]


def _console():
    from amml.cli.main import err, out

    return out, err


@contextmanager
def _registry(home: Path | None, *, read_only: bool = False) -> Iterator[Any]:
    """The registry on the store (``read_only`` for commands that only look: they never
    create or migrate it); registry and store errors become a message and exit 1."""
    from amml.cli.main import _fail, _open_store
    from amml.registry import ModelRegistry

    store = _open_store(home, read_only=read_only)
    try:
        yield ModelRegistry(store)
    except AMMLError as exc:
        raise _fail(str(exc), 1) from None
    finally:
        store.close()


def _when(stamp: float | None) -> str:
    return "" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _metrics_text(metrics: dict[str, Any], limit: int = 4) -> str:
    first = [k for k in ("mse", "mae", "val_mse", "mse_original") if k in metrics]
    keys = first + [k for k in metrics if k not in first]
    shown = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
             for k, v in ((k, metrics[k]) for k in keys) if not isinstance(v, dict)][:limit]
    return ", ".join(shown)


def _signature_text(signature: dict[str, Any]) -> str:
    if not signature:
        return ""
    parts = [signature.get("model_kind") or ""]
    if signature.get("task") == "detect":  # a fitted detector: rows per score, no horizon
        parts.append(f"detect L{signature.get('lookback')}")
    elif signature.get("lookback") is not None:
        parts.append(f"L{signature['lookback']}→H{signature.get('horizon')}")
    if signature.get("freq"):
        parts.append(str(signature["freq"]))
    return " ".join(p for p in parts if p)


def _change(event: dict[str, Any]) -> str:
    before = "—" if event["from_version"] is None else str(event["from_version"])
    after = "removed" if event["to_version"] is None else str(event["to_version"])
    return f"{before} → {after}"


def _history_table(events: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("when", "alias", "version", "who", "why"):
        table.add_column(column)
    for event in events:
        table.add_row(_when(event["at"]), event["alias"], _change(event), event["actor"],
                      event["reason"])
    return table


@app.command("list")
def list_models(
    name: Annotated[str | None, typer.Argument(help="List this model's versions.")] = None,
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """List registered models (or one model's versions) with their aliases."""
    out, _ = _console()
    with _registry(home, read_only=True) as registry:
        if name is None:
            rows = []
            for model in registry.names():
                versions = registry.versions(model)
                rows.append({"name": model, "versions": len(versions),
                             "latest": versions[-1].version,
                             "aliases": registry.aliases(model),
                             "updated_at": versions[-1].created_at})
        else:
            found = registry.versions(name)
            if not found:
                registry.resolve(name)  # raises: no model named ... (models: ...)
            rows = [v.to_json() for v in found]
    if json_output:
        out.print_json(json.dumps(rows))
        return
    if not rows:
        out.print("no models registered yet: add a 'register' step to a workflow")
        return
    if name is None:
        table = Table()
        for column in ("model", "versions", "latest", "aliases", "registered"):
            table.add_column(column)
        for row in rows:
            aliases = ", ".join(f"{a}→{v}" for a, v in row["aliases"].items())
            table.add_row(row["name"], str(row["versions"]), str(row["latest"]), aliases,
                          _when(row["updated_at"]))
    else:
        table = Table(title=f"model {name}", title_justify="left")
        for column in ("version", "aliases", "metrics", "signature", "run/step", "registered",
                       "by"):
            table.add_column(column)
        for row in rows:
            lineage = f"{row['run_id']}/{row['step']}" if row["run_id"] else ""
            table.add_row(str(row["version"]), ", ".join(row["aliases"]),
                          _metrics_text(row["metrics"]), _signature_text(row["signature"]),
                          lineage, _when(row["created_at"]), row["created_by"])
    out.print(table)


@app.command()
def show(
    reference: Annotated[str, typer.Argument(
        help="NAME (newest version), NAME@VERSION or NAME@ALIAS.")],
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Show one version: metrics, signature, lineage, aliases and their audit trail."""
    out, _ = _console()
    with _registry(home, read_only=True) as registry:
        version = registry.resolve(reference)
        events = [e for e in registry.alias_history(version.name)
                  if version.version in (e["from_version"], e["to_version"])]
        inputs: dict[str, str] = {}
        if version.run_id and version.step_name:
            for edge in registry.store.metadata.edges_for_steps(
                    [(version.run_id, version.step_name)]):
                if edge["direction"] == "in":
                    inputs[edge["port"]] = edge["artifact_digest"]
    info = {**version.to_json(), "ref": version.ref,
            "lineage": {"run_id": version.run_id, "step": version.step_name,
                        "inputs": inputs},
            "history": events}
    if json_output:
        out.print_json(json.dumps(info, default=str))
        return
    aliases = f" · aliases [bold]{', '.join(version.aliases)}[/]" if version.aliases else ""
    out.print(f"[bold]{version.ref}[/]{aliases} · registered {_when(version.created_at)} by "
              f"{version.created_by}")
    if version.description:
        out.print(version.description, highlight=False)
    out.print(f"artifact  {version.artifact_type} {version.artifact_digest}")
    out.print(f"code      {version.code_version.describe()}", highlight=False)
    if version.run_id:
        out.print(f"lineage   run {version.run_id}, step {version.step_name} "
                  f"(amml lineage {version.run_id}:{version.step_name})")
        for port, digest in inputs.items():
            out.print(f"          {port} ← {digest[:16]}")
    if version.metrics:
        from amml.registry.promotion import flatten_metrics

        table = Table(title="metrics", title_justify="left")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in flatten_metrics(version.metrics).items():
            table.add_row(key, f"{value:.6g}" if isinstance(value, float) else str(value))
        out.print(table)
    if version.signature:
        table = Table(title="signature", title_justify="left")
        table.add_column("field")
        table.add_column("value")
        for key, value in version.signature.items():
            if key == "scaler" and isinstance(value, dict):
                value = ", ".join(f"{c}: {s.get('kind', '?')}" for c, s in value.items())
            elif isinstance(value, list):
                value = ", ".join(map(str, value))
            table.add_row(key, "" if value is None else str(value))
        out.print(table)
    if events:
        out.print(_history_table(events, "alias history"))


@app.command()
def alias(
    name: NameArg,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. champion.")],
    version: Annotated[str | None, typer.Argument(
        help="The version (a number, or another alias) to point at.")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the alias.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Move it even to a version with another signature (columns, "
        "lookback, horizon, frequency) than the current one's.")] = False,
    reason: ReasonOption = "",
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Point ALIAS at VERSION (atomically, audited), or --remove it. A VERSION whose signature
    differs from the one ALIAS points at now is refused unless --force."""
    from amml.cli.main import _fail

    out, _ = _console()
    if remove == (version is not None):
        raise _fail("give either VERSION or --remove", 2)
    with _registry(home) as registry:
        if remove:
            previous = registry.remove_alias(name, alias_name, reason=reason)
            target = None
        else:
            target = registry.resolve(f"{name}@{version}").version
            previous = registry.set_alias(name, alias_name, target, reason=reason,
                                          same_signature=not force)
    if json_output:
        out.print_json(json.dumps({"name": name, "alias": alias_name,
                                   "from_version": previous, "to_version": target}))
    elif target is None:
        out.print(f"removed alias [bold]{alias_name}[/] of {name} (was version {previous})")
    else:
        was = "new" if previous is None else f"was version {previous}"
        out.print(f"{name}@[bold]{alias_name}[/] → version {target} ({was})")


@app.command()
def promote(
    name: NameArg,
    candidate: Annotated[str, typer.Option(
        "--from", help="The candidate: an alias or a version number.")] = "challenger",
    target: Annotated[str, typer.Option("--to", help="The alias to move.")] = "champion",
    metric: Annotated[str, typer.Option(help="The metric compared.")] = "mse",
    mode: Annotated[str, typer.Option(help="min: lower is better; max: higher.")] = "min",
    force: Annotated[bool, typer.Option(
        "--force", help="Promote even if not better, or if its signature (columns, lookback, "
        "horizon, frequency) differs from the current holder's.")] = False,
    reason: ReasonOption = "",
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Move --to (champion) to --from (challenger) if its metric beats the current holder's
    and it answers the same question (same signature; else refused unless --force)."""
    from amml.cli.main import _fail
    from amml.registry import promote as promote_alias

    out, err = _console()
    if mode not in ("min", "max"):
        raise _fail(f"--mode must be min or max, got '{mode}'", 2)
    with _registry(home) as registry:
        result = promote_alias(registry, name, candidate=candidate, target=target,
                               metric=metric, mode=mode, reason=reason,  # type: ignore[arg-type]
                               force=force)
    if json_output:
        out.print_json(json.dumps(result.to_json()))
    elif result.promoted:
        out.print(f"[green]promoted[/] {name}@{result.to_version} to [bold]{target}[/]: "
                  f"{escape(str(result.reason))}", highlight=False)
    else:
        err.print(f"[yellow]not promoted:[/] {escape(str(result.reason))}", highlight=False)
    if not result.promoted:
        raise typer.Exit(1)


@app.command()
def delete(
    name: NameArg,
    version: Annotated[int, typer.Argument(help="The version to retire.")],
    force: Annotated[bool, typer.Option(
        "--force", help="Also remove aliases that point at it.")] = False,
    reason: ReasonOption = "",
    home: HomeOption = None,
) -> None:
    """Retire a version: hidden from listings and references, kept for lineage."""
    out, _ = _console()
    with _registry(home) as registry:
        aliases = registry.get(name, version).aliases
        registry.delete(name, version, reason=reason, force=force)
    removed = f" (removed aliases: {', '.join(aliases)})" if aliases else ""
    out.print(f"deleted {name}@{version}{removed}")


@app.command()
def history(
    name: NameArg,
    alias_name: Annotated[str | None, typer.Argument(
        metavar="[ALIAS]", help="Only this alias.")] = None,
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """The audit trail of alias moves: who moved which alias, when, from where to where, why."""
    out, _ = _console()
    with _registry(home, read_only=True) as registry:
        events = registry.alias_history(name, alias_name)
        if not events:
            registry.resolve(name if alias_name is None else f"{name}@{alias_name}")
    if json_output:
        out.print_json(json.dumps(events, default=str))
        return
    if not events:
        out.print(f"no alias moves recorded for {name}"
                  + (f" alias {alias_name}" if alias_name else ""))
        return
    out.print(_history_table(events, f"alias history of {name}"
                             + (f"@{alias_name}" if alias_name else "")))


@app.command()
def card(
    reference: Annotated[str, typer.Argument(
        help="NAME (newest version), NAME@VERSION or NAME@ALIAS.")],
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Write card.md, card.html, card.json and the PNG plots here.")] = None,
    output_format: Annotated[str, typer.Option(
        "--format", help="What to print without --out: md, html or json.")] = "md",
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """The model card of a version: intended use, lineage and time ranges, training
    configuration and code version, test metrics overall and per slice (hour of day, station
    or device), explanation summary, drift history, ledger heads, known limits and checks.
    Exit code 1 when a check failed."""
    from amml.cli.main import _fail
    from amml.registry.cards import build_card

    out, err = _console()
    chosen = "json" if json_output else output_format
    if chosen not in ("md", "html", "json"):
        raise _fail(f"--format must be md, html or json, got '{output_format}'", 2)
    with _registry(home, read_only=True) as registry:
        made = build_card(registry.store, reference, plots=out_dir is not None
                          or chosen == "html")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "card.md").write_text(made.to_markdown(), encoding="utf-8")
        (out_dir / "card.html").write_text(made.to_html(), encoding="utf-8")
        (out_dir / "card.json").write_text(json.dumps(made.to_json(), indent=1, default=str),
                                           encoding="utf-8")
        for name, data in made.plots.items():
            (out_dir / f"{name}.png").write_bytes(data)
        err.print(f"card of {made.ref} written to {out_dir} (card.md, card.html, card.json, "
                  f"{len(made.plots)} plot(s))", highlight=False)
    elif chosen == "json":
        out.print_json(json.dumps(made.to_json(), default=str))
    elif chosen == "html":
        typer.echo(made.to_html())
    else:
        typer.echo(made.to_markdown(plot_link=None))
    if not made.passed:
        failed = ", ".join(c.name for c in made.failed_checks)
        err.print(f"[yellow]{made.ref}: failed checks:[/] {escape(failed)}", highlight=False)
        raise typer.Exit(1)


@app.command()
def policy(
    name: NameArg,
    candidate: Annotated[str, typer.Option(
        "--from", help="The candidate: an alias or a version number.")] = "challenger",
    target: Annotated[str, typer.Option("--to", help="The alias to move.")] = "champion",
    metric: Annotated[str, typer.Option(help="The test-split metric compared.")] = "mse",
    min_points: Annotated[int, typer.Option(
        help="Labelled forecast points needed in the recent window.", min=1)] = 50,
    tolerance: Annotated[float, typer.Option(
        help="How much worse (a fraction) the candidate's test metric may be.",
        min=0.0)] = 0.10,
    live_gain: Annotated[float, typer.Option(
        help="How much better (a fraction) its live MSE must be.", min=0.0)] = 0.0,
    window: Annotated[float | None, typer.Option(
        help="Seconds of served requests to judge on (default: all).", min=1.0)] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Decide and print; move nothing, record nothing.")] = False,
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Promote by policy: the candidate must beat the champion on the recent labelled window
    (served requests with actuals) and stay within --tolerance on the test split, with at
    least --min-points labelled points and a model card with no failed check. A promotion is
    a signed entry of the ledger promotions/NAME. Exit code 1 when not promoted."""
    from amml.registry.policy import PromotionPolicy, apply, decide

    out, err = _console()
    rule = PromotionPolicy(metric=metric, min_points=min_points, test_tolerance=tolerance,
                           min_live_gain=live_gain, window_s=window)
    with _registry(home, read_only=dry_run) as registry:
        chosen = decide if dry_run else apply
        decision = chosen(registry.store, name, candidate=candidate, target=target,
                          policy=rule)
    if json_output:
        out.print_json(json.dumps(decision.to_json(), default=str))
    elif decision.promoted:
        verb = "would promote" if dry_run else "promoted"
        entry = f" (ledger {decision.ledger} #{decision.ledger_seq})" if decision.ledger else ""
        out.print(f"[green]{verb}[/] {name}@{decision.candidate_version} to [bold]{target}[/]: "
                  f"{escape(decision.reason)}{entry}", highlight=False)
    else:
        err.print(f"[yellow]not promoted:[/] {escape(decision.reason)}", highlight=False)
    if not decision.promoted:
        raise typer.Exit(1)
