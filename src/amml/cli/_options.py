"""Options shared by the command modules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

HomeOption = Annotated[Path | None, typer.Option(
    "--home", envvar="AMML_HOME", help="Folder of the default store (default: ./.amml).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
