"""``amml ledger``: verify, inspect and roll back the tamper-evident training ledger."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from amml._exceptions import AMMLError
from amml.cli._options import HomeOption, JsonOption

app = typer.Typer(name="ledger", no_args_is_help=True,
                  help="Tamper-evident training ledger: verify, rollback, signed heads.")

def attach(main: typer.Typer) -> None:
    main.add_typer(app, name="ledger")


LedgerArg = Annotated[str, typer.Argument(
    help="Ledger name (RUN/STEP for workflow training) or a unique prefix such as a run id.")]


def _console():
    from amml.cli.main import err, out

    return out, err


def _open(home: Path | None, *, read_only: bool = True):
    """The store, read-only unless the command appends (rollback)."""
    from amml.cli.main import _open_store

    return _open_store(home, read_only=read_only)


def _resolve(store, name: str, *, many: bool = False, witnessed: bool = False) -> list[str]:
    """Ledgers named ``name`` or starting with it; ``witnessed`` also counts ledgers the local
    witnesses know for this store, so verifying a vanished one says so."""
    from amml.cli.main import _fail
    from amml.store.ledger import Ledger

    names = Ledger.names(store)
    if witnessed:
        names = sorted(set(names) | set(Ledger.witnessed(store)))
    if name in names:
        return [name]
    matches = [n for n in names if n.startswith(name)]
    if not matches:
        shown = ", ".join(names[:5]) or "none yet"
        raise _fail(f"no ledger named or starting with '{name}' (ledgers: {shown})", 1)
    if len(matches) > 1 and not many:
        raise _fail(f"'{name}' matches several ledgers ({', '.join(matches[:5])}); "
                    "give the full name", 1)
    return matches




@app.command("list")
def list_ledgers(json_output: JsonOption = False, home: HomeOption = None) -> None:
    """List ledgers with their length and newest entry."""
    from amml.store.ledger import Ledger

    out, _ = _console()
    store = _open(home)
    rows = []
    for name in Ledger.names(store):
        head = Ledger(store, name).head()
        rows.append({"ledger": name, "entries": head.seq + 1 if head else 0,
                     "head": head.entry_hash if head else None,
                     "last_kind": head.kind if head else None})
    store.close()
    if json_output:
        out.print_json(json.dumps(rows))
        return
    table = Table()
    for column in ("ledger", "entries", "last entry", "head hash"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["ledger"], str(row["entries"]), row["last_kind"] or "",
                      (row["head"] or "")[:16])
    out.print(table)


@app.command()
def show(ledger: LedgerArg, json_output: JsonOption = False, home: HomeOption = None) -> None:
    """Show every entry of a ledger: kind, epoch, metrics, checkpoint, signer."""
    from amml.store.ledger import Ledger

    out, _ = _console()
    store = _open(home)
    name = _resolve(store, ledger)[0]
    entries = Ledger(store, name).entries()
    store.close()
    if json_output:
        out.print_json(json.dumps([{**e.body, "entry_hash": e.entry_hash,
                                    "signature": e.signature} for e in entries]))
        return
    table = Table(title=f"ledger {name}", title_justify="left")
    for column in ("seq", "kind", "epoch", "metrics", "checkpoint", "time", "key", "code"):
        table.add_column(column, min_width=44 if column == "metrics" else None)
    for entry in entries:
        body = entry.body
        metrics = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in (body.get("metrics") or {}).items())
        if entry.kind == "rollback":
            metrics = f"→ entry {body['extra']['target_seq']}: {body['extra'].get('reason', '')}"
        stamp = dt.datetime.fromtimestamp(entry.created_at).strftime("%H:%M:%S")
        table.add_row(str(entry.seq), entry.kind, "" if entry.epoch is None else str(entry.epoch),
                      metrics, (entry.checkpoint or {}).get("digest", "")[:12], stamp,
                      entry.key_id[:8], _code_text(entry.code_version))
    out.print(table)


def _code_text(version) -> str:
    """The commit of the code that appended an entry (``+dirty`` with uncommitted changes);
    ``-`` for entries from before code versions were recorded."""
    if version is None:
        return "-"
    if not version.commit:
        return "no git"
    return version.commit[:8] + ("+dirty" if version.dirty else "")


@app.command()
def verify(
    ledger: Annotated[str | None, typer.Argument(
        help="Ledger name or prefix (a run id verifies all its ledgers); default: all.")] = None,
    against: Annotated[Path | None, typer.Option(
        "--against", help="A signed head file from 'amml ledger head' to check against.")
    ] = None,
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Re-hash every checkpoint and check every link and signature."""
    from amml.cli.main import _fail
    from amml.store.ledger import Ledger

    out, err = _console()
    store = _open(home)
    # every ledger of the store plus those the local witnesses know: one whose entries were
    # all deleted is no longer in the store, and must fail rather than go unmentioned
    names = (_resolve(store, ledger, many=True, witnessed=True) if ledger
             else sorted(set(Ledger.names(store)) | set(Ledger.witnessed(store))))
    head = None
    if against is not None:
        try:
            head = json.loads(against.read_text())
        except (OSError, ValueError) as exc:
            raise _fail(f"cannot read head file {against}: {exc}", 2) from None
        names = [head.get("ledger", "")] if not ledger else names
    reports = []
    try:
        for name in names:
            reports.append(Ledger(store, name).verify(against=head))
    except AMMLError as exc:
        raise _fail(str(exc), 1) from None
    finally:
        store.close()
    if json_output:
        out.print_json(json.dumps([r.to_json() for r in reports]))
    else:
        for report in reports:
            if report.ok:
                witness = " · head witnessed" if report.witnessed else ""
                out.print(f"[green]✓[/] {escape(report.ledger)}: {report.entries} entries, "
                          f"{report.checkpoints} checkpoints ({report.bytes_checked:,} bytes) "
                          f"verified{witness}")
            elif report.vanished:
                err.print(f"[red]✗ {escape(report.ledger)}: vanished[/]: "
                          f"{escape(str(report.problem))}", highlight=False)
            else:
                err.print(f"[red]✗ {report.ledger}: broken at entry {report.broken_seq}[/]: "
                          f"{escape(str(report.problem))}", highlight=False)
        if not reports:
            out.print("no ledgers recorded yet")
    if any(not r.ok for r in reports):
        raise typer.Exit(1)


@app.command()
def rollback(
    ledger: LedgerArg,
    to: Annotated[int | None, typer.Option("--to", help="Epoch to restore.")] = None,
    seq: Annotated[int | None, typer.Option("--seq", help="Or: the entry to restore.")] = None,
    out_path: Annotated[Path | None, typer.Option(
        "--out", help="Where to write the checkpoint (default: LEDGER-epochN.safetensors).")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why, recorded in the ledger.")] = "",
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Verify the chain up to an epoch, restore its checkpoint bit-exactly, and record it."""
    from amml.cli.main import _fail
    from amml.store.ledger import Ledger

    out, _ = _console()
    if (to is None) == (seq is None):
        raise _fail("give exactly one of --to EPOCH or --seq N", 2)
    store = _open(home, read_only=False)
    name = _resolve(store, ledger)[0]
    try:
        data, target, entry = Ledger(store, name).rollback(to, seq=seq, reason=reason)
    except AMMLError as exc:
        raise _fail(str(exc), 1) from None
    finally:
        store.close()
    safe = name.replace("/", "-")
    path = out_path or Path(f"{safe}-epoch{target.epoch}.safetensors")
    path.write_bytes(data)
    digest = target.checkpoint["digest"]
    result = {"ledger": name, "restored_seq": target.seq, "epoch": target.epoch,
              "digest": digest, "path": str(path), "rollback_entry": entry.seq}
    if json_output:
        out.print_json(json.dumps(result))
    else:
        out.print(f"[green]restored[/] epoch {target.epoch} (entry {target.seq}) of {name} to "
                  f"{path}\n  sha256 {digest}\n  recorded as rollback entry {entry.seq}")


@app.command()
def head(
    ledger: LedgerArg,
    out_path: Annotated[Path | None, typer.Option("--out", help="Write to this file.")] = None,
    home: HomeOption = None,
) -> None:
    """Print a signed (sequence, hash) statement of the newest entry, to keep elsewhere."""
    from amml.cli.main import _fail
    from amml.store.ledger import Ledger

    store = _open(home)
    name = _resolve(store, ledger)[0]
    try:
        statement = Ledger(store, name).signed_head()
    except AMMLError as exc:
        raise _fail(str(exc), 1) from None
    finally:
        store.close()
    text = json.dumps(statement, sort_keys=True, indent=2)
    if out_path:
        out_path.write_text(text + "\n")
    typer.echo(text)


@app.command()
def key() -> None:
    """Print the active signing key's id and public key (to trust it elsewhere)."""
    from amml.store.keys import KeyRing, public_hex

    out, _ = _console()
    ring = KeyRing()
    active = ring.active()
    out.print(f"key id     {active.key_id}\npublic key {public_hex(active.public)}\n"
              f"folder     {ring.folder}")


@app.command()
def trust(public_key: Annotated[str, typer.Argument(
        help="Hex of a raw Ed25519 public key, or a file holding it.")]) -> None:
    """Trust another machine's signing key when verifying."""
    from amml.cli.main import _fail
    from amml.store.keys import KeyRing

    out, _ = _console()
    text = Path(public_key).read_text() if Path(public_key).exists() else public_key
    try:
        key_id = KeyRing().trust(text)
    except ValueError as exc:
        raise _fail(f"not an Ed25519 public key: {exc}", 2) from None
    out.print(f"trusted key {key_id}")


@app.command("rotate-key")
def rotate_key() -> None:
    """Make a new signing key active; each ledger records the hand-over on its next entry."""
    from amml.store.keys import KeyRing

    out, _ = _console()
    old, new = KeyRing().rotate()
    out.print(f"new signing key {new.key_id} (was {old.key_id})")
