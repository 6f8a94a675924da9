"""`python -m tests.bench.gateway`: see tests/bench/gateway/cli.py."""

from tests.bench.gateway.cli import main

raise SystemExit(main())
