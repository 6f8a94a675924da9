"""The naive synchronous pipeline the design review criticises, run beside ours by `make bench`.

One FastAPI process: per tick it validates, INSERTs + COMMITs into Postgres and computes the view
in-process before answering. No queue, no Redis. See `app.py`.
"""
