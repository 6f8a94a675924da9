"""The CI workflow is a valid GitHub workflow: lint, `make test` against Redis and PostgreSQL
service containers, an image build, and a GHCR push on version tags only.
"""

from __future__ import annotations

from typing import Any

from tests.deploy.common import check_jsonschema, load_yaml

WORKFLOW = ".github/workflows/ci.yml"


def _jobs() -> dict[str, Any]:
    return load_yaml(WORKFLOW)["jobs"]


def _step(job: dict[str, Any], action: str) -> dict[str, Any]:
    return next(s for s in job["steps"] if s.get("uses", "").startswith(action + "@"))


def test_workflow_is_valid_per_the_github_workflow_schema() -> None:
    result = check_jsonschema("vendor.github-workflows", WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_runs_ruff_check_and_format() -> None:
    runs = [step.get("run", "") for step in _jobs()["lint"]["steps"]]
    assert "ruff check ." in runs and "ruff format --check ." in runs


def test_tests_run_make_test_against_redis_and_postgres_services() -> None:
    job = _jobs()["test"]
    assert {"redis", "postgres"} <= set(job["services"])
    assert job["env"]["REDIS_URL"].startswith("redis://127.0.0.1:6379")
    assert job["env"]["PG_URL"].startswith("postgresql://") and ":5432/" in job["env"]["PG_URL"]
    assert any(step.get("run") == "make test" for step in job["steps"])


def test_image_is_built_always_and_pushed_to_ghcr_only_on_version_tags() -> None:
    workflow = load_yaml(WORKFLOW)
    assert "v*" in workflow[True]["push"]["tags"]  # YAML 1.1 reads the key `on` as True
    job = _jobs()["image"]
    build = _step(job, "docker/build-push-action")
    assert build["with"]["push"] == "${{ startsWith(github.ref, 'refs/tags/v') }}"
    login = _step(job, "docker/login-action")
    assert login["if"] == "startsWith(github.ref, 'refs/tags/v')"
    assert login["with"]["registry"] == "ghcr.io"
    assert job["permissions"]["packages"] == "write"
