"""`python -m tests.chaos [--short] [--only NAME ...] [--json PATH]`: run the scenarios, print the
table, exit non-zero unless every scenario kept the promise."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from tests.chaos.run import run_scenario
from tests.chaos.scenarios import FULL, SCENARIOS, SHORT
from tests.support.verify import as_dict, format_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the shortened run CI makes")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS), default=None)
    parser.add_argument("--tps", type=float, default=400.0, help="offered ticks per second")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=Path("artifacts/chaos/chaos.json"))
    args = parser.parse_args(argv)

    names = args.only or list(SCENARIOS)
    scale = SHORT if args.short else FULL
    outcomes = []
    workdir = Path(tempfile.mkdtemp(prefix="tickstream-chaos-"))  # kept when a scenario fails
    for number, name in enumerate(names, 1):
        print(f"[{number}/{len(names)}] {name}…", flush=True)
        outcome = run_scenario(name, workdir, scale, tps=args.tps, seed=args.seed + number)
        outcomes.append(outcome)
        print(format_table([outcome]).splitlines()[3], flush=True)
    if all(o.ok for o in outcomes):
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(format_table(outcomes))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps([as_dict(o) for o in outcomes], indent=2))
    print(f"\nJSON: {args.json}")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
