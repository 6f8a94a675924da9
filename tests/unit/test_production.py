"""Secure by default: production refuses dev-default secrets, naming each variable; dev warns."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from backend.settings import ApiSettings, FeederSettings, UiSettings, WorkerSettings
from backend.settings.production import (
    InsecureSettings,
    enforce_deploy_policy,
    insecure_settings,
)


def test_dev_defaults_are_named_by_their_variables() -> None:
    problems = insecure_settings(ApiSettings(api_key=None))
    assert problems == [
        "INGEST_PASSWORD is the documented dev default",
        "INTERNAL_TOKEN is the documented dev default",
        "API_KEY is not set",
    ]


def test_each_process_is_checked_on_its_own_fields_only() -> None:
    # The UI holds no ingest password or internal token: only its API key is asked for.
    assert insecure_settings(UiSettings(api_key=None)) == ["API_KEY is not set"]
    assert insecure_settings(WorkerSettings(api_key=SecretStr("k"))) == []
    assert insecure_settings(FeederSettings(api_key=SecretStr("k"))) == [
        "INGEST_PASSWORD is the documented dev default"
    ]


def test_production_refuses_to_start_naming_the_variable() -> None:
    settings = ApiSettings(
        tickstream_env="production",
        api_key=SecretStr("real-key"),
        internal_token=SecretStr("real-token"),
    )
    with pytest.raises(InsecureSettings) as raised:
        enforce_deploy_policy(settings, "api")
    assert "INGEST_PASSWORD" in str(raised.value.code)
    assert "INTERNAL_TOKEN" not in str(raised.value.code)


def test_production_with_real_secrets_starts() -> None:
    settings = ApiSettings(
        tickstream_env="production",
        api_key=SecretStr("k"),
        internal_token=SecretStr("t"),
        ingest_password=SecretStr("p"),
    )
    enforce_deploy_policy(settings, "api")  # no exit


def test_dev_starts_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="backend.settings.production"):
        enforce_deploy_policy(WorkerSettings(api_key=None), "worker")
    assert len(caplog.records) == 1
    assert "API_KEY is not set" in caplog.records[0].getMessage()
