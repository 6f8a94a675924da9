"""Where Debian's chromium is and how we start it (shared by the browser tests and the UI soak).

Playwright drives it through `executable_path`; it never downloads a browser of its own. The
flags keep a root, display-less, offline machine happy (no sandbox, no GPU, no background calls
to Google that the closed network would refuse).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
INSTALL_HINT = "install Debian's chromium with `.ci/ensure-chromium` (make test runs it)"


def find_chromium() -> str | None:
    """CHROMIUM_PATH, else `chromium` on PATH, else /usr/bin/chromium; None when none exists."""
    found = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    return found if Path(found).exists() else None
