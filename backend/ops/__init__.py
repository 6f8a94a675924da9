"""Process endpoints every Tickstream process serves: /health/liveness, /health/readiness, /metrics.

The API has them as FastAPI routes; the Dramatiq services (through a fork) and the feeder (inside
its event loop) serve the small Starlette app built here on a port of their own.
"""
