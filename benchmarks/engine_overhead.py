"""Engine overhead: a chain of 100 no-op steps, cold and fully cached.

Prints the per-step overhead of a cold run (cache keys computed, every step, artifact, lineage
edge and cache entry recorded in the SQLite store) and the wall time of a fully cached re-run,
beside the same chain as plain Python function calls measured in the same process, and beside
per-step overheads of Kedro and Prefect (cited, see below).

Like for like: by default every step returns a value of its own, so every step writes its own
artifact (``--identical`` lets all steps return the same value, which the content-addressed
store keeps once: less work, printed as a second line, never judged). The clock runs around
the whole ``Runner.run`` call: planning, the run record and execution.

The Kedro and Prefect figures are cited, not measured here: they were measured on this kind
of machine by the session that filed the engine-overhead issue (Kedro's SequentialRunner on
no-op nodes with no cache and no tracking; Prefect tasks in one flow, plus about 1 s per
flow). Their scope differs from AMML's (neither computes cache keys or records lineage).

    python benchmarks/engine_overhead.py [--steps 100] [--repeats 7] [--identical]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from amml import Runner, Workflow, compile_workflow, op, open_store

# Cited in the issue, measured on this kind of machine: per-step (per-task) overhead.
KEDRO_MS_PER_STEP = 0.355  # no cache, no tracking
PREFECT_MS_PER_TASK = 2.35  # plus about 1 s per flow
GOAL_MS_PER_STEP = 0.35
GOAL_CACHED_RUN_MS = 50.0
DISTINCT = True  # every step returns a new value, so every step writes a file


@op(name="bench.noop")
def noop(value: int, *, index: int = 0) -> int:
    return value + index + 1 if DISTINCT else value


@op(name="bench.start")
def start(*, seed: int = 0) -> int:
    return seed


def build(steps: int):
    with Workflow("engine-overhead") as wf:
        previous = start(seed=1)
        for index in range(steps - 1):
            previous = noop(previous, index=index, name=f"step_{index:03d}")
    return compile_workflow(wf)


def plain_python(steps: int) -> float:
    started = time.perf_counter()
    value = start.func(seed=1)
    for index in range(steps - 1):
        value = noop.func(value, index=index)
    # (noop reads DISTINCT too, so the baseline does the same work)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--identical", action="store_true",
                        help="every step returns the same value (one artifact in all)")
    args = parser.parse_args()
    global DISTINCT
    DISTINCT = not args.identical
    args.distinct = DISTINCT

    started = time.perf_counter()
    workflow = build(args.steps)
    compile_s = time.perf_counter() - started

    cold, cached, execution_only = [], [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as home:
            store = open_store(Path(home))
            runner = Runner(store)
            started = time.perf_counter()
            first = runner.run(workflow)
            cold.append(time.perf_counter() - started)
            assert first.count("ran") == args.steps, first.status
            files = sum(1 for p in (Path(home) / "artifacts").glob("*/*") if p.is_file())
            assert files >= (args.steps if DISTINCT else 1), files
            started = time.perf_counter()
            second = runner.run(workflow)
            cached.append(time.perf_counter() - started)
            assert second.count("cached") == args.steps
            execution_only.append(first.duration_s)
            runner.executor.shutdown()
            store.close()
    baseline = statistics.median(plain_python(args.steps) for _ in range(200))
    cold_s, cached_s = statistics.median(cold), statistics.median(cached)
    per_step_ms = (cold_s - baseline) / args.steps * 1000
    cached_ms = cached_s * 1000

    print(f"engine_overhead steps={args.steps} repeats={args.repeats} store=sqlite "
          f"outputs={'distinct' if args.distinct else 'identical'}")
    print(f"engine_overhead metric=cold_run_ms value={cold_s * 1000:.2f} "
          "(planning, run record and execution)")
    print(f"engine_overhead metric=cold_execution_only_ms "
          f"value={statistics.median(execution_only) * 1000:.2f} (the run's own duration_s)")
    print(f"engine_overhead metric=per_step_ms value={per_step_ms:.4f}")
    print(f"engine_overhead metric=cached_run_ms value={cached_ms:.2f}")
    print(f"engine_overhead metric=cached_per_step_ms value={cached_ms / args.steps:.4f}")
    print(f"engine_overhead metric=plain_python_chain_ms value={baseline * 1000:.4f}")
    print(f"engine_overhead metric=compile_ms value={compile_s * 1000:.2f}")
    print()
    print(f"{'system':<34}{'ms per step':>12}{'ratio to AMML':>16}")
    rows = [("AMML cold (cache keys + lineage)", per_step_ms),
            ("Kedro (cited; no cache, no lineage)", KEDRO_MS_PER_STEP),
            ("Prefect (cited; + ~1 s per flow)", PREFECT_MS_PER_TASK),
            ("plain Python call (measured)", baseline * 1000 / args.steps)]
    for name, value in rows:
        print(f"{name:<34}{value:>12.4f}{value / per_step_ms:>15.2f}x")
    print()
    print(f"goal: <= {GOAL_MS_PER_STEP} ms per step -> "
          f"{'met' if per_step_ms <= GOAL_MS_PER_STEP else 'NOT met'} ({per_step_ms:.3f} ms); "
          f"fully cached {args.steps}-step re-run <= {GOAL_CACHED_RUN_MS:.0f} ms -> "
          f"{'met' if cached_ms <= GOAL_CACHED_RUN_MS else 'NOT met'} ({cached_ms:.1f} ms)")


if __name__ == "__main__":
    main()
