"""The machine a benchmark ran on, for its JSON: figures mean little without it."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import psutil


def machine() -> dict[str, Any]:
    """CPUs, memory, Python and platform of this machine."""
    return {
        "cpus": os.cpu_count(),
        "memory_total": psutil.virtual_memory().total,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
