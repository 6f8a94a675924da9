"""`python -m backend.ops.healthcheck [URL]`: exit 0 if URL answers 2xx, else 1.

The container HEALTHCHECK runs this every few seconds in every Tickstream container, so it is
stdlib only (no settings import, no pydantic, no logging setup): it must stay cheap and must
not fail for a reason unrelated to the service it probes. The URL comes from the command line;
the Dockerfile's shell-form HEALTHCHECK passes `${HEALTHCHECK_URL:-<API liveness>}`, so the
environment is read by the shell, not here (settings are read only at process edges).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000/health/liveness"
TIMEOUT_S = 3.0


def probe(url: str, timeout: float = TIMEOUT_S) -> tuple[bool, str]:
    """(healthy, one-line reason): healthy only on a 2xx answer within `timeout` seconds."""
    if not url.startswith(("http://", "https://")):
        return False, f"not an http(s) URL: {url!r}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # scheme checked above
            status = response.status
    except urllib.error.HTTPError as exc:
        return False, f"{url} answered {exc.code}"
    except (OSError, ValueError) as exc:
        return False, f"{url} unreachable: {exc}"
    return 200 <= status < 300, f"{url} answered {status}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    url = args[0] if args and args[0] else DEFAULT_URL
    healthy, reason = probe(url)
    print(reason, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
