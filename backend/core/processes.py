"""What the launcher tells the rest of the system about the processes it supervises."""

from __future__ import annotations

from pydantic import Field

from backend.core.contract import Contract


class ProcessRestarts(Contract):
    """How often one Procfile process was restarted after it died, and the last time.

    `last_exit_code` follows `subprocess.Popen.returncode`: a negative value is the signal that
    killed the process (-9: SIGKILL), so "crashed" and "was killed" stay distinguishable.
    """

    count: int = Field(ge=0, description="restarts since the namespace was created")
    last_exit_code: int | None = Field(
        None, description="exit status of the last death; negative: killed by that signal"
    )
    last_restart_ms: int | None = Field(None, description="when it was last restarted, epoch ms")
