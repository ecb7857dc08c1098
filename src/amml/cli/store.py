"""``amml store``: look after the metadata store itself (create, upgrade, verify).

A server store (PostgreSQL) is never created or migrated as a side effect of another command:
``amml store init`` creates its tables once, ``amml store upgrade`` migrates it after an AMML
upgrade, so whoever runs them chooses when a shared database changes. The embedded SQLite
default still creates and upgrades itself on first use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from amml._exceptions import AMMLError
from amml.cli._options import HomeOption, JsonOption

app = typer.Typer(name="store", no_args_is_help=True,
                  help="The metadata store: create or upgrade its schema, verify it.")


def attach(main: typer.Typer) -> None:
    main.add_typer(app, name="store")


def _schema_command(home: Path | None, action: str, json_output: bool) -> None:
    """Run ``init`` or ``upgrade`` on the metadata store only (no artifact folder needed).

    The database is the one every command uses: ``AMML_STORE_URL``, else the SQLite file
    under ``--home`` (never a URL on the command line, where a password would show in ``ps``).
    """
    from amml.cli.main import _fail, out
    from amml.store import metadata_url
    from amml.store.metadata import MetadataStore

    try:
        metadata = MetadataStore(metadata_url(home), migrate=False, check=False)
    except AMMLError as exc:
        raise _fail(str(exc), 1) from None
    try:
        before, after = (metadata.init_schema() if action == "init"
                         else metadata.upgrade_schema())
    except AMMLError as exc:
        raise _fail(str(exc), 1) from None
    finally:
        metadata.close()
    if json_output:
        out.print_json(json.dumps({"store": metadata.display_url, "action": action,
                                   "from_revision": before, "revision": after}))
    elif before == after:
        out.print(f"{metadata.display_url}: already at schema revision {after}",
                  highlight=False)
    elif before is None:
        out.print(f"[green]created[/] the AMML schema (revision {after}) in "
                  f"{metadata.display_url}", highlight=False)
    else:
        out.print(f"[green]upgraded[/] {metadata.display_url} from schema revision {before} "
                  f"to {after}", highlight=False)


@app.command()
def init(json_output: JsonOption = False, home: HomeOption = None) -> None:
    """Create the AMML tables in an empty database (once, before the first run)."""
    _schema_command(home, "init", json_output)


@app.command()
def upgrade(json_output: JsonOption = False, home: HomeOption = None) -> None:
    """Migrate the store's schema to this AMML version's (after upgrading AMML)."""
    _schema_command(home, "upgrade", json_output)


@app.command()
def verify(
    repair: Annotated[bool, typer.Option(
        "--repair", help="Move bad files to quarantine/ and drop the cache entries that name "
                         "them, so the next run rebuilds them.")] = False,
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Re-hash every artifact against its name; report corrupt, empty and missing ones.

    Exit 1 when something is bad and --repair was not given.
    """
    from amml.cli.main import _open_store, err, out
    from amml.store.artifacts.verify import verify_store

    store = _open_store(home, read_only=not repair)  # a plain check writes nothing
    try:
        report = verify_store(store, repair=repair)
    finally:
        store.close()
    if json_output:
        out.print_json(json.dumps(report.to_json()))
    else:
        for finding in report.findings:
            action = " (moved to quarantine)" if finding.quarantined else ""
            err.print(f"[red]{escape(str(finding.problem))}[/] {finding.digest}{action}",
                      highlight=False)
        summary = (f"checked {report.checked} artifact{'s' if report.checked != 1 else ''} in "
                   f"{store.artifacts.url}: ")
        if report.unavailable:
            out.print(f"{report.unavailable} artifact(s) of earlier runs are no longer stored "
                      "(no cache entry names them; a run that needs them rebuilds them)",
                      highlight=False)
        if report.ok:
            out.print(summary + "[green]all intact[/]", highlight=False)
        elif repair:
            out.print(summary + f"{len(report.findings)} bad, set aside; dropped "
                      f"{report.cache_entries_dropped} cache entr"
                      f"{'y' if report.cache_entries_dropped == 1 else 'ies'}: the next run "
                      "rebuilds them", highlight=False)
        else:
            out.print(summary + f"[red]{len(report.findings)} bad[/]; 'amml store verify "
                      "--repair' sets them aside so the next run rebuilds them",
                      highlight=False)
    if not report.ok and not repair:
        raise typer.Exit(1)
