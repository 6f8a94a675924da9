"""`python -m tests.bench.pipeline`: see tests/bench/pipeline/bench.py."""

from tests.bench.pipeline.bench import main

raise SystemExit(main())
