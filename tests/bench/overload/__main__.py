"""`python -m tests.bench.overload`: see tests/bench/overload/cli.py."""

from tests.bench.overload.cli import main

raise SystemExit(main())
