"""What the deploy tests share: the repository root, the Procfile, YAML loading."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ("api", "gateway", "worker", "alerts", "history", "feeder", "ui")
BIN = Path(sys.executable).parent


def procfile() -> dict[str, str]:
    """{process: command} from the Procfile, the source every deploy artifact must match."""
    commands: dict[str, str] = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            commands[name.strip()] = command.strip()
    return commands


def load_yaml(relative: str) -> Any:
    return yaml.safe_load((ROOT / relative).read_text())


def check_jsonschema(schema: str, relative: str) -> subprocess.CompletedProcess[str]:
    """Validate a file against one of check-jsonschema's vendored schemas (no network)."""
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", schema, str(ROOT / relative)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
