from tests.bench.replay.cli import main

raise SystemExit(main())
