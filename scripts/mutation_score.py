"""Print the mutation score per module from ``mutmut results --all true``.

``make mutation`` runs mutmut over the modules behind the headline claims (``[tool.mutmut]``
in pyproject.toml), then this. A mutant is *killed* when a test failed (or timed out) with it
in place; the score is killed / (killed + survived). Mutants not yet checked are counted
apart, so a partial run says how partial it is. Exit status 1 when a module that finished
scores under ``--goal``.

    python scripts/mutation_score.py [--goal 85]
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys

LINE = re.compile(r"^\s*(?P<module>[\w.]+?)\.(?:x_|xǁ)\S*__mutmut_\d+: (?P<status>[\w ]+)$")
KILLED = {"killed", "timeout", "segfault"}
#: a mutant in code no selected test runs is not caught: it counts as a survivor
SURVIVED = {"survived", "no tests"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--goal", type=float, default=85.0)
    args = parser.parse_args()
    done = subprocess.run(["mutmut", "results", "--all", "true"], capture_output=True,
                          text=True, check=False)
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in done.stdout.splitlines():
        match = LINE.match(line)
        if match:
            status = match["status"].strip()
            counts[match["module"]][
                "killed" if status in KILLED else "survived" if status in SURVIVED else status
            ] += 1
    if not counts:
        print("mutation: no results (run 'mutmut run' first)", file=sys.stderr)
        return 1
    below = 0
    for module, count in sorted(counts.items()):
        judged = count["killed"] + count["survived"]
        score = 100.0 * count["killed"] / judged if judged else float("nan")
        pending = sum(v for k, v in count.items() if k not in ("killed", "survived"))
        finished = pending == 0
        below += finished and score < args.goal
        print(f"mutation module={module} score={score:.1f} killed={count['killed']} "
              f"survived={count['survived']} not_checked={pending} "
              f"{'' if finished else '(partial)'}".rstrip())
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
