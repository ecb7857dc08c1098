"""Plant each bug of the table below in a copy of the code and check that a test fails.

Each headline claim of AMML has a test that must break when the claim breaks. This script
proves it the only convincing way: it copies ``src`` and ``tests`` to a scratch folder, makes
one deliberate change there (never in the checkout), runs the tests named for it, and reports
whether they failed as they must. ``make planted-bugs`` runs it; it exits 1 if any bug
survives (every named test passed) or no longer applies (the code it patches has changed).

    python scripts/planted_bugs.py            # every bug
    python scripts/planted_bugs.py ledger-link # one, by id
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class PlantedBug:
    id: str
    claim: str
    path: str  # relative to the repository root
    old: str  # exact text that must occur once
    new: str
    tests: tuple[str, ...]  # pytest node ids or paths that must fail
    #: more (path, old, new) edits made together with the first (one bug, two places)
    also: tuple[tuple[str, str, str], ...] = ()


BUGS = (
    PlantedBug(
        "preprocess-fit-all", "preprocess fits its scaler on the training part only",
        "src/amml/ops/transforms/preprocess.py",
        "fit = frame[numeric].iloc[:fit_rows]", "fit = frame[numeric]",
        ("tests/ops/test_transforms.py",)),
    PlantedBug(
        "scale-ignores-fit", "scale fits on its 'fit' input / fit_fraction only",
        "src/amml/ops/transforms/scale.py",
        "basis = fit if fit is not None else table.iloc[",
        "basis = table if True else table.iloc[",
        ("tests/ops/test_transforms.py",)),
    PlantedBug(
        "ledger-link", "ledger verify catches reordered or forged history",
        "src/amml/store/ledger.py",
        'if entry.prev_hash != body.get("prev") or body.get("prev") != prev:',
        "if False:",
        ("tests/store/test_ledger.py::test_entry_forged_by_the_key_holder_breaks_the_next_link",
         "tests/store/test_ledger.py::test_reordered_entries_are_detected")),
    PlantedBug(
        "cache-key-version", "the cache key covers the op's name and version",
        "src/amml/engine/fingerprint.py",
        '{"op": op_name, "version": op_version, "code": code,',
        '{"op": op_name, "code": code,',
        ("tests/engine/test_cache.py::test_a_new_op_version_reruns_that_op_and_what_follows",)),
    PlantedBug(
        "digest-helpers", "the code digest follows the helpers an op calls in its module",
        "src/amml/engine/fingerprint.py",
        """                if getattr(target, "__module__", None) == module:
                    stack.append(target)""",
        """                if getattr(target, "__module__", None) == module:
                    pass""",
        ("tests/engine/test_code_digest.py",
         "tests/engine/test_cache.py::"
         "test_editing_a_same_module_helper_changes_the_digest_and_nothing_else_does")),
    # The weights are restored in two places (the model before the trainer is built, and the
    # trainer with its optimizer); dropping only one of them changes nothing, so both go.
    PlantedBug(
        "resume-weights", "training resumes from a checkpoint's weights (resume_from)",
        "src/amml/ops/models/torch_model.py",
        "restore_checkpoint(t.resume_checkpoint, self.net)", "pass",
        ("tests/ops/models/test_resume.py",),
        also=(("src/amml/ops/models/torch_training.py",
               "info = restore_checkpoint(resume_checkpoint, model, self.optimizer)",
               "info = restore_checkpoint(resume_checkpoint, __import__('copy')"
               ".deepcopy(model), self.optimizer)"),)),
    PlantedBug(
        "resume-trainer", "the trainer restores a resumed checkpoint (weights and optimizer)",
        "src/amml/ops/models/torch_training.py",
        "info = restore_checkpoint(resume_checkpoint, model, self.optimizer)",
        "info = {}",
        ("tests/ops/models/test_resume.py",)),
    PlantedBug(
        "artifact-not-atomic", "artifacts are written atomically (temporary file, rename)",
        "src/amml/store/artifacts/local.py",
        'tmp = folder / f"{TMP_PREFIX}{digest[:16]}-{os.getpid()}-{time.monotonic_ns()}"',
        "tmp = folder / digest",
        ("tests/store/test_artifact_integrity.py",)),
    PlantedBug(
        "store-import-cycle", "every store module imports first (no circular import)",
        "src/amml/store/devices.py",
        "from amml.store.metadata.schema import metadata\n",
        "from amml.store.api_keys import hash_secret as _cycle  # noqa\n"
        "from amml.store.metadata.schema import metadata\n",
        ("tests/store/test_import_order.py",)),
    PlantedBug(
        "nab-probation", "the NAB scorer's probationary period matches NAB's (>=)",
        "src/amml/bench/nab.py",
        "counted = idx >= probationary_length(n, percent)",
        "counted = idx > probationary_length(n, percent)",
        ("tests/bench/test_nab_scorer.py",)),
    PlantedBug(
        "record-novelty", "the amml detector's record novelty alarms on its own",
        "src/amml/ops/detectors/novelty.py",
        "        if record:\n            combined = 1.0\n",
        "",
        ("tests/ops/detectors/test_novelty.py",)),
    PlantedBug(
        "nab-tune-defaults", "a --tune setting spelling out the defaults wins ties",
        "src/amml/cli/bench.py",
        "if own_setting is None and tuned.get_params() == effective:",
        "if own_setting is None and {**params, **setting} == params:",
        ("tests/bench/test_nab_nested.py",)),
    PlantedBug(
        "daily-ungated", "the time-of-day part joins only where the series follows its time of day",
        "src/amml/ops/detectors/novelty.py",
        "if daily >= DAILY_ALARM and self._daily.informative:",
        "if daily >= DAILY_ALARM:",
        ("tests/ops/detectors/test_novelty_daily.py",)),
    PlantedBug(
        "daily-median", "the time-of-day part compares with the nearest same-time value",
        "src/amml/ops/detectors/novelty.py",
        "score = self._calibrate.update(nearest / scale)",
        "score = self._calibrate.update(residual / scale)",
        ("tests/ops/detectors/test_novelty_daily.py",)),
    PlantedBug(
        "detect-reference-streams", "a detect step with a reference scores with everything "
        "frozen on it", "src/amml/ops/detectors/detect.py",
        "score = used.score(values)  # frozen",
        "score = used.score_series(values)  # frozen",
        ("tests/ops/detectors/test_detect_reference.py",)),
    PlantedBug(
        "pot-default-quantile", "threshold='pot' works with a detector's default quantile (1.0)",
        "src/amml/ops/detectors/fitted.py",
        "level = self.quantile if self.quantile < 1.0 else POT_LEVEL",
        "level = self.quantile",
        ("tests/ops/detectors/test_fitted.py::test_pot_threshold_works_with_the_default_quantile",)),
    PlantedBug(
        "bench-param-keeps-the-set", "bench nab --param changes one key of the parameter set",
        "src/amml/cli/bench.py",
        "params = {**NAB_PARAMS.get(detector, {}), **_params(param or [])}",
        "params = _params(param) if param else dict(NAB_PARAMS.get(detector, {}))",
        ("tests/bench/test_nab_params.py",)),
    PlantedBug(
        "stored-detector-names-module", "a stored detector names no module to import",
        "src/amml/ops/detectors/fitted.py",
        'text = json.dumps({"class": class_path(FittedDetector), "config": meta},',
        'text = json.dumps({"class": class_path(type(self)), "config": meta},',
        ("tests/ops/detectors/test_detect_reference.py",)),
    PlantedBug(
        "daily-early-residuals", "the time-of-day likelihood learns from ordinary days only",
        "src/amml/ops/detectors/novelty.py",
        "            if self._residuals.count >= MIN_RESIDUALS:\n                score = ",
        "            if self._residuals.count >= 0:\n                score = ",
        ("tests/ops/detectors/test_novelty_daily.py",)),
    PlantedBug(
        "stuck-ignores-repeats", "a run of equal values alarms only where repeats are rare",
        "src/amml/ops/detectors/novelty.py",
        "and self._repeats < STUCK_SHARE * self._counted)",
        "and self._repeats >= 0)",
        ("tests/ops/detectors/test_novelty_stuck.py",)),
    PlantedBug(
        "synthetic-window-off-onset", "a generated anomaly sits in the middle of its window",
        "src/amml/bench/synthetic.py",
        "return onset, max(onset - half, 0), min(onset + half, rows - 1)",
        "return onset, max(onset, 0), min(onset + 2 * half, rows - 1)",
        ("tests/bench/test_synthetic.py",)),
    PlantedBug(
        "synthetic-base-differs", "a generated anomaly is injected over the anomaly-free values",
        "src/amml/bench/synthetic.py",
        "values = BASES[base](rows, np.random.default_rng([seed, base_index[base], k]))",
        "values = BASES[base](rows, np.random.default_rng([seed, base_index[base], k,\n"
        "                                                                  len(category)]))",
        ("tests/bench/test_synthetic.py",)),
)


def _copy_tree(target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".amml", ".pytest_cache")
    for name in ("src", "tests", "examples"):
        shutil.copytree(ROOT / name, target / name, ignore=ignore)
    for name in ("pyproject.toml",):
        shutil.copy2(ROOT / name, target / name)


def check(bug: PlantedBug, python: str) -> tuple[str, float, str]:
    """``(verdict, seconds, detail)``: verdict is caught, SURVIVED or STALE."""
    with tempfile.TemporaryDirectory(prefix=f"amml-planted-{bug.id}-") as scratch:
        copy = Path(scratch)
        _copy_tree(copy)
        for path, old, new in ((bug.path, bug.old, bug.new), *bug.also):
            target = copy / path
            text = target.read_text()
            if text.count(old) != 1:
                return "STALE", 0.0, f"{path}: the text to patch occurs {text.count(old)}x"
            target.write_text(text.replace(old, new))
        env = {**os.environ, "PYTHONPATH": str(copy / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
        started = time.perf_counter()
        done = subprocess.run(
            [python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--no-header",
             "-o", "addopts=", *bug.tests], cwd=copy, env=env, capture_output=True,
            text=True)
        seconds = time.perf_counter() - started
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))]
        summary = (done.stdout.strip().splitlines() or [""])[-1]
        if done.returncode == 0:
            return "SURVIVED", seconds, summary
        if done.returncode != 1:  # 2..5: collection error, usage error, no tests
            return "STALE", seconds, f"pytest exit {done.returncode}: {summary}"
        return "caught", seconds, "; ".join(lines[:3]) or summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ids", nargs="*", help="bug ids (default: all)")
    args = parser.parse_args()
    chosen = [b for b in BUGS if not args.ids or b.id in args.ids]
    unknown = set(args.ids) - {b.id for b in BUGS}
    if unknown:
        parser.error(f"unknown bug ids: {', '.join(sorted(unknown))}")
    bad = 0
    for bug in chosen:
        verdict, seconds, detail = check(bug, sys.executable)
        bad += verdict != "caught"
        print(f"planted bug={bug.id} verdict={verdict} seconds={seconds:.0f} "
              f"claim=\"{bug.claim}\"\n    {detail}", flush=True)
    print(f"planted bugs: {len(chosen) - bad} of {len(chosen)} caught")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
