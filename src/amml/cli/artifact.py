"""``amml artifact``: save a step's output (a plot, a table, a report) to a file.

``TARGET`` is ``STEP[.OUTPUT]`` (latest run), ``RUN:STEP[.OUTPUT]`` or an artifact digest
prefix. Images are written as PNG; tables as CSV (with their time index as the first column)
or Parquet (by the file's suffix); JSON, text, arrays and models as stored. The bytes are
checked against their digest first: a corrupt artifact is an error, never written out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from amml._exceptions import AMMLError
from amml.cli._options import HomeOption

_SUFFIX = {"image": ".png", "table": ".csv", "json": ".json", "text": ".txt", "array": ".npy",
           "model": ".safetensors"}


def attach(main: typer.Typer) -> None:
    main.command("artifact")(artifact)


def _pick_output(graph: dict[str, Any], output: str | None, target: str) -> dict[str, Any]:
    outputs = {o["port"]: o["artifact"] for o in graph.get("outputs", [])}
    if not outputs:
        raise ValueError(f"step '{target}' has no recorded outputs")
    if output is None:
        if len(outputs) > 1:
            raise ValueError(f"step '{target}' has outputs {', '.join(sorted(outputs))}: "
                             f"name one as STEP.OUTPUT")
        return next(iter(outputs.values()))
    if output not in outputs:
        raise ValueError(f"step '{target}' has no output '{output}' "
                         f"(it has: {', '.join(sorted(outputs))})")
    return outputs[output]


def _meaningful_index(frame: Any) -> bool:
    import pandas as pd

    index = frame.index
    return not (isinstance(index, pd.RangeIndex) and index.name is None)


def _write(value: Any, kind: str, path: Path) -> None:
    if kind == "image" or isinstance(value, bytes):
        path.write_bytes(value)
    elif kind == "table":
        if path.suffix == ".parquet":
            value.to_parquet(path)
        else:  # the index is the time axis of every source table: keep it (a column named
            # after it) unless it is only a row counter
            value.to_csv(path, index=_meaningful_index(value))
    elif kind == "json":
        path.write_text(json.dumps(value, indent=2, default=str) + "\n")
    elif kind == "text":
        path.write_text(value)
    elif kind == "array":
        import numpy as np

        np.save(path, value)
    else:
        from safetensors.numpy import save_file

        save_file(value.get_tensors(), str(path),
                  metadata={"config": json.dumps(value.get_config(), default=str)})


def artifact(
    target: Annotated[str, typer.Argument(
        help="STEP[.OUTPUT] of the latest run, RUN:STEP[.OUTPUT], or a digest prefix.")],
    output_file: Annotated[Path | None, typer.Option(
        "--out", "-o", help="File to write (default: TARGET with the type's suffix).")] = None,
    home: HomeOption = None,
) -> None:
    """Save a step's output (a plot, a table, a report) to a file."""
    from amml.cli.main import _client, _fail, out

    step_part, _, output = target.partition(".")
    with _client(home) as client:
        if ":" not in step_part and len(step_part) >= 8 and all(
                c in "0123456789abcdef" for c in step_part) and not output:
            graph = client.lineage(step_part)
            info = graph["artifact"] if graph.get("kind") == "artifact" else None
        else:
            info = None
        if info is None:
            if ":" not in step_part:
                latest = client.runs(limit=1)
                if not latest:
                    raise _fail("no runs recorded yet: try 'amml run FILE'", 1)
                step_part = f"{latest[0]['id']}:{step_part}"
            graph = client.lineage(step_part)
            try:
                # name the step as resolved (RUN:STEP), not the whole TARGET with its output
                info = _pick_output(graph, output or None, step_part)
            except ValueError as exc:
                raise _fail(str(exc), 1) from None
        try:
            value = client.load_artifact(info["digest"])
        except AMMLError as exc:  # a corrupt file (now set aside) or a missing one
            raise _fail(str(exc), 1) from None
    kind = info["type"]
    path = output_file or Path(target.replace(":", "_").replace(".", "_") + _SUFFIX.get(kind, ""))
    _write(value, kind, path)
    out.print(f"wrote {path} ({kind}, {path.stat().st_size:,} bytes)", highlight=False)
