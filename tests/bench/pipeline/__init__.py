"""Pipeline benchmark: our system side by side with the naive synchronous baseline.

    python -m tests.bench.pipeline [--runs 3] [--duration 15] [--json artifacts/bench/pipeline.json]

Layout: `procs` (CPU and RSS accounting over process trees), `systems` (our system, the
baseline, the SSE view watcher), `counters` (what Redis and the API count about themselves),
`profiler` (py-spy), `report` (medians, ratios, table, plot), `options` and `bench` (the runs
and the command line).
"""
