"""The Procfile the other deploy tests compare against has every process, once."""

from tests.deploy.common import PROCESSES, procfile


def test_procfile_lists_every_process_with_a_python_module_command() -> None:
    commands = procfile()
    assert set(commands) == set(PROCESSES)
    assert all(command.startswith("python -m ") for command in commands.values())
