"""The Dockerfile builds from files that exist and reach the build context, runs as a non-root
user in production mode with a HEALTHCHECK, documents the Procfile's commands and passes hadolint.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess

from tests.deploy.common import BIN, ROOT, procfile


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    return [(i.split(None, 1)[0].upper(), i.split(None, 1)[1]) for i in joined]


def _dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [p.strip().rstrip("/") for p in lines if p.strip() and not p.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule closely enough for our patterns: a path is out if it or a parent matches."""
    parts = path.removeprefix("./").strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        bare = pattern.removeprefix("**/")
        if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, bare) for p in prefixes):
            excluded = not negate
    return excluded


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    patterns = _dockerignore()
    sources: list[str] = []
    for instruction, args in _instructions():
        if instruction != "COPY" or "--from=" in args:
            continue
        words = [w for w in args.split() if not w.startswith("--")]
        sources += words[:-1]
    assert sources, "no COPY from the build context"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file"
        assert not _ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    patterns = _dockerignore()
    for path in (".venv", ".git", ".env", "var", "artifacts", "tests"):
        assert _ignored(path, patterns), path


def test_runtime_stage_is_slim_python_311_non_root_production_with_healthcheck() -> None:
    instructions = _instructions()
    stages = [args for instruction, args in instructions if instruction == "FROM"]
    assert len(stages) >= 2, "multi-stage: a builder and a runtime"
    assert all(s.split()[0] == "python:3.11-slim" for s in stages)
    runtime = instructions[max(i for i, (ins, _) in enumerate(instructions) if ins == "FROM") :]
    users = [args for ins, args in runtime if ins == "USER"]
    assert users, "runtime stage sets no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    envs = " ".join(args for ins, args in runtime if ins == "ENV")
    assert re.search(r"\bTICKSTREAM_ENV=production\b", envs)
    healthchecks = [args for ins, args in runtime if ins == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "backend.ops.healthcheck" in healthchecks[0]


def test_builder_installs_the_package_without_extras() -> None:
    runs = [args for ins, args in _instructions() if ins == "RUN" and "pip install" in args]
    assert runs, "the builder installs nothing"
    for run in runs:
        assert "[" not in run and "-e " not in run, f"extras or editable install: {run}"


def test_documented_commands_are_the_procfiles_and_default_is_the_api() -> None:
    text = (ROOT / "Dockerfile").read_text()
    names = "|".join(procfile())
    documented = dict(re.findall(rf"^#\s+({names}):\s+(.+?)\s*$", text, re.M))
    assert documented == procfile()
    cmd = [args for ins, args in _instructions() if ins == "CMD"][-1]
    assert cmd == f'["sh", "-c", "exec {procfile()["api"]}"]'


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
