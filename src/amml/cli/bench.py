"""``amml bench``: run benchmarks; ``amml bench nab`` scores a streaming detector on NAB (or any
NAB-layout folder), ``amml bench synthetic`` writes a generated, labelled corpus in that layout."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from amml.cli._options import HomeOption, JsonOption

app = typer.Typer(name="bench", no_args_is_help=True,
                  help="Benchmarks (NAB; generated, labelled corpora).")

PROFILE_ORDER = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")

#: Scored here, not published figures: the result files that ARTime and Numenta HTM published
#: in the NAB repository (``results/ARTime/``, ``results/numenta/``) scored by this project's
#: NAB scorer on exactly the 24-series subset in ../shared/datasets/nab (normalised on that
#: subset). Reproduce with ``amml bench nab --score-results NAB/results/ARTime``. On the whole
#: corpus NAB's own scorer gives them 74.9 and 70.1 (standard profile, NAB's scoreboard).
CITED_SUBSET = {
    "ARTime": {"standard": 68.8, "reward_low_FP_rate": 60.0, "reward_low_FN_rate": 74.1},
    "Numenta HTM": {"standard": 64.9, "reward_low_FP_rate": 59.1, "reward_low_FN_rate": 69.9},
}
CITED_SUBSET_SHAPE = (24, 39)  # series, windows: the subset those figures belong to

#: Rows in NAB's whole corpus (58 series): Ahmad, Lavin, Purdy and Agha, "Unsupervised real-time
#: anomaly detection for streaming data", Neurocomputing 262 (2017). A run on a subset prints the
#: time the whole corpus would take at the rate it measured (an extrapolation, labelled as one).
NAB_FULL_CORPUS_ROWS = 365_551
#: NAB's seven categories: the whole-corpus estimate means something for a part of NAB only.
NAB_CATEGORIES = frozenset({"artificialNoAnomaly", "artificialWithAnomaly", "realAdExchange",
                            "realAWSCloudwatch", "realKnownCause", "realTraffic", "realTweets"})


def _params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` options as detector parameters (VALUE as JSON where it parses)."""
    from amml.cli.main import _fail

    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise _fail(f"--param takes KEY=VALUE, got {item!r}", 2)
        try:
            params[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            params[key.strip()] = text
    return params


def _grid(items: list[str]) -> list[dict[str, Any]]:
    """``KEY=V1,V2,...`` options as the grid of their combinations (values read as JSON where
    they parse), in the order given."""
    import itertools

    from amml.cli.main import _fail

    axes: list[tuple[str, list[Any]]] = []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise _fail(f"--tune takes KEY=V1,V2,... or KEY=[V1, V2, ...], got {item!r}", 2)
        values = _json_list(text)
        if values is None and text.lstrip().startswith("["):
            raise _fail(f"--tune {key.strip()}: {text!r} starts a JSON list but is not one "
                        "(a non-empty list of values, such as [[8,16],[8]])", 2)
        if values is None:
            values = [_params([f"v={value}"])["v"] for value in text.split(",")]
        axes.append((key.strip(), values))
    return [dict(zip([k for k, _ in axes], combo, strict=True))
            for combo in itertools.product(*[v for _, v in axes])]


def _json_list(text: str) -> list[Any] | None:
    """``[V1, V2, ...]`` read as JSON: the values may be lists themselves (``[[8, 16], [8]]``)."""
    if not text.lstrip().startswith("["):
        return None
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        return None
    return values if isinstance(values, list) and values else None


def _label(setting: dict[str, Any]) -> str:
    # compact JSON: a label is one word of a `key=value` line, lists included
    return ",".join(f"{key}={json.dumps(value, separators=(',', ':'))}"
                    for key, value in setting.items())


def attach(main: typer.Typer) -> None:
    main.add_typer(app, name="bench")


@app.command("nab")
def nab(
    data: Annotated[Path, typer.Option("--data", help="NAB-layout folder (data/, labels/).")] = (
        Path("../shared/datasets/nab")),
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Where the results go, in NAB's layout (default: nab-results in the "
        "store's home, ./.amml/nab-results).")] = None,
    detector: Annotated[str, typer.Option("--detector", help="Streaming detector name.")] = "amml",
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="A detector parameter, KEY=VALUE (VALUE read as JSON, else as "
        "text); repeatable. The same parameters the detect op takes. Each one overrides its "
        "key of the benchmark's parameter set (amml: output=alarm alarm=0.45) and keeps the "
        "rest: -p output=score scores instead of deciding.")] = None,
    score_results: Annotated[Path | None, typer.Option(
        "--score-results", help="Score a detector's published result files instead of running "
        "one: a folder in NAB's results layout (results/NAME/CATEGORY/NAME_FILE.csv).")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, help="Processes to score the series in (one series each, the "
        "longest first; default: every core). 1: in this process, one series after "
        "another.")] = None,
    tune: Annotated[list[str] | None, typer.Option(
        "--tune", help="KEY=V1,V2,...: also run every combination of these values (on top "
        "of the parameter set) and print nested leave-one-category-out: each category scored "
        "with the combination and threshold picked on the other categories; repeatable. "
        "The values may be a JSON list instead, for values that are lists: "
        "KEY='[[8,16],[8,16,32]]'.")
    ] = None,
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Run a streaming detector over every NAB series and print the three profile scores,
    in-sample (NAB's threshold, picked on the corpus) and leave-one-category-out (``loco``:
    each category at the threshold picked on the other categories). With ``--tune``, the
    parameters too are picked inside each fold (``nested``)."""
    from amml.bench.nab import (
        NAB_PARAMS,
        load_corpus,
        load_profiles,
        score_corpus,
        score_corpus_loco,
        score_corpus_nested,
        write_results,
    )
    from amml.bench.nab_run import run_detector
    from amml.cli.main import _fail, out
    from amml.ops.detectors.base import detector_names, make_detector

    if out_dir is None:  # beside the store, never in the folder (a checkout) it ran from
        from amml.store import default_home

        out_dir = (home or default_home()) / "nab-results"
    if score_results is None and detector not in detector_names():
        raise _fail(f"unknown detector '{detector}' (known: {', '.join(detector_names())})", 2)
    # one key changed keeps the rest of the set: "-p daily=0" is the set without daily
    params = {**NAB_PARAMS.get(detector, {}), **_params(param or [])}
    if score_results is None:
        from amml._exceptions import OpError

        try:
            make_detector(detector, **params)
        except OpError as exc:
            raise _fail(str(exc), 2) from None
    settings = _grid(tune) if tune else []
    if settings and score_results is not None:
        raise _fail("--tune runs the detector with each setting; it does not go with "
                    "--score-results", 2)
    # every combination is checked before anything runs; the one equal to the parameter set,
    # its defaults included (`--tune record=0,0.5` names the default 0.5 without it being in
    # the parameter set), reuses that run and wins ties
    own_setting = None
    if settings:
        effective = make_detector(detector, **params).get_params()
    for setting in settings:
        try:
            tuned = make_detector(detector, **{**params, **setting})
        except OpError as exc:
            raise _fail(f"--tune {_label(setting)}: {exc}", 2) from None
        if own_setting is None and tuned.get_params() == effective:
            own_setting = setting
    try:
        corpus = load_corpus(data)
    except FileNotFoundError as exc:
        raise _fail(str(exc), 2) from None
    if not corpus.series:
        raise _fail(f"no series under {data / 'data'}", 2)
    profiles = load_profiles(data / "config" / "profiles.json")
    # no more processes than series; none when published files are scored (no detector runs)
    workers = 0 if score_results is not None else min(workers or os.cpu_count() or 1,
                                                       len(corpus.series))
    rows = sum(len(frame) for frame in corpus.series.values())
    started = time.perf_counter()
    results = {}
    if score_results is not None:  # published result files, scored by the same scorer
        import pandas as pd

        detector = score_results.name
        for name, frame in corpus.series.items():
            category, file = name.split("/", 1)
            path = score_results / category / f"{detector}_{file}"
            if not path.is_file():
                raise _fail(f"--score-results: no result file {path}", 2)
            published = pd.read_csv(path)
            if len(published) != len(frame):
                raise _fail(f"--score-results: {path} has {len(published)} rows, the series "
                            f"{len(frame)}", 2)
            results[name] = frame.assign(
                anomaly_score=published["anomaly_score"].to_numpy(dtype=float))
    else:  # the series spread over processes; the result files are written here, after
        for name, scores in run_detector(corpus, detector, params, workers).items():
            frame = corpus.series[name]
            write_results(out_dir, detector, name, frame, scores, corpus.windows.get(name, []))
            results[name] = frame.assign(anomaly_score=scores)
    detect_s = time.perf_counter() - started
    # published files scored: nothing ran here, so no parameters and no results folder to name
    ran_with, written_to = ((None, None) if score_results is not None
                            else (params, out_dir / detector))
    scored = score_corpus(results, corpus.windows, profiles)
    # held out: each category at the threshold picked on the others (NAB picks it in-sample)
    loco = score_corpus_loco(results, corpus.windows, profiles)
    runtime = time.perf_counter() - started
    nested: dict[str, Any] = {}
    if settings:  # the parameters picked inside each fold as well as the threshold
        runs: dict[str, dict[str, Any]] = {}
        preferred = None
        for setting in settings:
            merged = {**params, **setting}
            label = _label(setting)
            if setting is own_setting:  # the parameter set itself: its run is reused
                runs[label], preferred = results, label
                continue
            runs[label] = {name: corpus.series[name].assign(anomaly_score=scores)
                           for name, scores in run_detector(corpus, detector, merged,
                                                            workers).items()}
        nested = score_corpus_nested(runs, corpus.windows, profiles, prefer=preferred)
    ordered = [p for p in PROFILE_ORDER if p in scored] + [p for p in scored
                                                           if p not in PROFILE_ORDER]
    if json_output:
        out.print_json(json.dumps({
            "detector": detector, "params": ran_with, "series": len(results),
            "windows": corpus.n_windows,
            "runtime_s": runtime, "detect_s": detect_s,
            "out": None if written_to is None else str(written_to),
            "workers": workers, "rows": rows, "rows_per_s": rows / runtime if runtime else None,
            "profiles": {p: scored[p] for p in ordered},
            "leave_one_category_out": {p: loco[p] for p in ordered},
            **({"nested": {p: nested[p] for p in ordered}} if nested else {})}))
        return
    for profile in ordered:
        entry = scored[profile]
        score = entry["score"]
        text = "nan" if score is None else f"{score:.1f}"
        out.print(f"nab profile={profile} score={text} threshold={entry['threshold']:.6g}",
                  highlight=False)
    for profile in ordered:
        held = loco[profile]["score"]
        thresholds = ",".join(f"{c}:{t:.4g}" for c, t in loco[profile]["thresholds"].items())
        out.print(f"nab loco profile={profile} score="
                  f"{'nan' if held is None else f'{held:.1f}'} thresholds={thresholds}",
                  highlight=False)
    for profile in ordered:  # in-sample and held out, side by side
        inside, held = scored[profile]["score"], loco[profile]["score"]
        if inside is not None and held is not None:
            out.print(f"nab side_by_side profile={profile} in_sample={inside:.1f} "
                      f"loco={held:.1f} gap={inside - held:.1f}", highlight=False)
    for profile in (ordered if nested else []):
        entry = nested[profile]
        for label, score in entry["in_sample"].items():
            out.print(f"nab tune profile={profile} setting={label} in_sample="
                      f"{'nan' if score is None else f'{score:.1f}'}", highlight=False)
        picks = ";".join(f"{c}:{label}" for c, label in entry["picks"].items())
        best, held = entry["best_in_sample"], entry["held_out"]
        thresholds = ",".join(f"{c}:{t:.4g}" for c, t in entry["thresholds"].items())
        out.print(f"nab nested profile={profile} in_sample="
                  f"{'nan' if best is None else f'{best:.1f}'} held_out="
                  f"{'nan' if held is None else f'{held:.1f}'} best={entry['best']} "
                  f"picks={picks} thresholds={thresholds}", highlight=False)
    table = Table(title=f"NAB per category ({detector})")
    table.add_column("category")
    table.add_column("files", justify="right")
    table.add_column("windows", justify="right")
    for profile in ordered:
        table.add_column(profile, justify="right")
    categories = sorted(scored[ordered[0]]["per_category"]) if ordered else []
    for category in categories:
        cells = []
        for profile in ordered:
            entry = scored[profile]["per_category"][category]
            cells.append(f"{entry['raw']:.2f} raw" if entry["score"] is None
                         else f"{entry['score']:.1f}")
        first = scored[ordered[0]]["per_category"][category]
        table.add_row(category, str(first["files"]), str(first["windows"]), *cells)
    out.print(table)
    if (len(results), corpus.n_windows) == CITED_SUBSET_SHAPE:
        for peer, cited in CITED_SUBSET.items():
            cells = []
            for profile in ordered:
                ours = scored[profile]["score"]
                if profile in cited and ours is not None:
                    ratio = ours / cited[profile]
                    cells.append(f"{profile}={cited[profile]:.1f} ratio={ratio:.3f}")
            out.print(f"nab scored_here={peer.replace(' ', '_')} (its published result files, "
                      "this scorer, 24-series subset) " + " ".join(cells), highlight=False)
    load = ",".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "-"
    if ran_with is None:
        out.print(f"nab detector={detector} scored_from={score_results}", highlight=False)
    else:
        out.print(f"nab detector={detector} params={json.dumps(ran_with, sort_keys=True)} "
                  f"cpus={os.cpu_count()} load_average={load}", highlight=False)
    written = "" if written_to is None else f"results={written_to} "
    out.print(f"nab runtime_s={runtime:.2f} series={len(results)} windows={corpus.n_windows} "
              f"{written}workers={workers} rows={rows} "
              f"rows_per_s={rows / runtime if runtime else float('nan'):.0f}", highlight=False)
    categories_run = {name.split("/", 1)[0] for name in results}
    if workers and runtime and rows < NAB_FULL_CORPUS_ROWS and categories_run <= NAB_CATEGORIES:
        out.print(f"nab full_corpus_estimate_s={NAB_FULL_CORPUS_ROWS * runtime / rows:.1f} "
                  f"(extrapolated: NAB's {NAB_FULL_CORPUS_ROWS:,} rows at this run's rows_per_s, "
                  f"{workers} workers)", highlight=False)


@app.command("synthetic")
def synthetic(
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Folder to write the corpus to, in NAB's layout (data/, labels/; "
        "default: synthetic-nab in the store's home, ./.amml/synthetic-nab).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="The same seed writes the same corpus.")
                    ] = 0,
    per_pair: Annotated[int, typer.Option(
        "--per-pair", min=1, help="Series of each base with each anomaly kind (and as many "
        "anomaly-free ones of each base).")] = 2,
    rows: Annotated[int, typer.Option(
        "--rows", min=576, help="Five-minute rows a series (default: two weeks).")] = 4032,
    home: HomeOption = None,
) -> None:
    """Write a labelled corpus generated from a seed, in NAB's layout: data no detector was
    tuned on. One category per anomaly kind (spike, dip, level_shift, variance, stuck, drift,
    pattern) and ``none`` (anomaly-free), each over six base signals. Score a detector on it
    with ``amml bench nab --data DIR``: its per-category table is then a score per anomaly
    kind."""
    from amml.bench.synthetic import generate
    from amml.cli.main import out

    if out_dir is None:  # beside the store, never in the folder (a checkout) it ran from
        from amml.store import default_home

        out_dir = (home or default_home()) / "synthetic-nab"
    root = generate(out_dir, seed=seed, rows=rows, per_pair=per_pair)
    # the windows file names every series: no need to read the series back
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    categories = sorted({name.split("/", 1)[0] for name in windows})
    out.print(f"synthetic corpus={root} seed={seed} series={len(windows)} "
              f"windows={sum(map(len, windows.values()))} rows={len(windows) * rows} "
              f"categories={','.join(categories)}", highlight=False)
    out.print(f"score a detector on it: amml bench nab --data {root} --detector amml",
              highlight=False)
