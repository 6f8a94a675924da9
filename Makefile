# Two commands on a fresh machine: `make run` and `make test`.
# Everything else (the venv, dependencies, embedded servers, migrations) is set up on the way.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup browser prometheus wrk run test test-quick test-unit test-system-servers bench-candles soak-ui chaos bench bench-scaling bench-overload bench-gateway bench-replay bench-dedup bench-alerts bench-alerts-stall lint fmt clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[embedded,dev]'
	touch $(STAMP)

setup: $(STAMP)

## Debian's chromium for the browser tests (apt-get; Playwright never downloads a browser).
browser:
	.ci/ensure-chromium

## Debian's prometheus for tests/integration/test_prometheus.py (apt-get; its service never started).
prometheus:
	.ci/ensure-prometheus

## Debian's wrk for the pipeline benchmark's wrk mode (apt-get).
wrk:
	.ci/ensure-wrk

## Run the whole system (embedded Redis + PostgreSQL unless REDIS_URL / PG_URL are set).
run: setup
	$(PY) -m backend.launcher

## The test suite: unit tests plus integration tests against real servers and worker processes.
test: setup browser prometheus wrk
	$(PY) -m pytest -q -p no:cacheprovider

## The suite without the benchmark and chaos smoke runs (marked `bench`): quicker locally.
test-quick: setup
	$(PY) -m pytest -q -p no:cacheprovider -m "not bench"

test-unit: setup
	$(PY) -m pytest -q tests/unit

## Candles benchmark: 10M ticks, rollup-backed endpoint vs raw aggregation (no timed asserts).
bench-candles: setup
	$(PY) -m tests.bench.candles_bench --json artifacts/bench/candles.json

## UI soak: one page open in chromium for 10 min at 100 ticks/s; Streamlit RSS/CPU before/after.
soak-ui: setup browser
	$(PY) -m tests.bench.ui_soak --minutes 10 --tps 100 --json artifacts/soak/ui.json

## Chaos suite: six failure scenarios against a private system; prints the table (≈ 8 min).
chaos: setup
	$(PY) -m tests.chaos --json artifacts/chaos/chaos.json

## Pipeline benchmark: ours vs the naive synchronous pipeline: single ticks at 1,000/s, wrk -t1 -c32
## (unpaced), batch at 50,000/s for 60 s; medians of 3, then issue 17's targets table (≈ 10 min).
bench: setup wrk
	$(PY) -m tests.bench.pipeline --json artifacts/bench/pipeline.json

## How ours scales: API×worker process layouts 1×1, 2×2, 2×4 with wrk and batch at 50,000/s; rates and CPU per tick per tier.
bench-scaling: setup wrk
	$(PY) -m tests.bench.pipeline.scaling --json artifacts/bench/scaling.json

## De-dup memory: bytes per remembered event_id and Redis µs per tick, old string keys vs compact hashes,
## on REDIS_URL's Redis (if set) and an embedded 6.2, 1M event_ids each (≈ 5 min).
bench-dedup: setup
	$(PY) -m tests.bench.dedup_memory --embedded --json artifacts/bench/dedup_memory.json

## Alert rules scaling: evaluation CPU per 1,000 ticks with 0, 1,000 and 10,000 rules, indexed vs naive.
bench-alerts: setup
	$(PY) -m tests.bench.alerts_rules --json artifacts/bench/alerts_rules.json

## Scenario 2: 100 rules firing at slow (10 s) and dead receivers during batch ingest, vs no alerts.
bench-alerts-stall: setup
	$(PY) -m tests.bench.alerts_stall --json artifacts/bench/alerts_stall.json

## Overload: 10x the sustainable ingest rate for 60 s; RSS per process, backlog, loss, drain (≈ 2 min).
bench-overload: setup
	$(PY) -m tests.bench.overload --json artifacts/bench/overload.json

## Realtime gateway: 1,000 SSE clients at 2,000 events/s, healthy vs 10 % stalled, vs the old broadcaster (≈ 8 min).
bench-gateway: setup
	$(PY) -m tests.bench.gateway --json artifacts/bench/gateway.json

## Replays: 10M stored ticks (seeded once, kept) at max: rate, history RSS over the run; live latency without/with a replay (≈ 30 min).
bench-replay: setup
	$(PY) -m tests.bench.replay --json artifacts/bench/replay.json

## History import: a generated 1M-row CSV with 1 % bad rows; rows/s, bad rows by line, re-import.
bench-import: setup
	$(PY) -m tests.bench.import_bench

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf var/ artifacts/ .pytest_cache .ruff_cache
