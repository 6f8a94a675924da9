"""Secure by default: in production a process refuses to start on a dev-default secret.

The repository documents dev defaults for every secret so `make run` works out of the box. A
deployment that forgot to set one would then run with a password anyone can read on GitHub, so
with `TICKSTREAM_ENV=production` every process checks its own settings at its edge and exits,
naming each variable to set. In dev it starts and says so once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from pydantic import SecretStr

from backend.settings.base import SettingsBase, env_names

log = logging.getLogger(__name__)

# Secrets whose default is a published dev value (field name -> that value).
DEV_SECRETS = {
    "ingest_password": "ingest-dev-password",
    "internal_token": "internal-dev-token",
}
# Secrets production must set: without an API key the read API and /metrics are open to anyone.
REQUIRED_IN_PRODUCTION = ("api_key",)


class InsecureSettings(SystemExit):
    """Raised (as an exit) when production settings still hold dev defaults."""


def _secret(value: object) -> str | None:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return None if value is None else str(value)


def insecure_settings(settings: SettingsBase) -> list[str]:
    """One line per problem, naming the environment variable; [] when nothing is a dev default.

    Only the fields this process's class has are checked: a feeder is not asked for the API's
    internal token.
    """
    return list(_problems(settings))


def _problems(settings: SettingsBase) -> Iterator[str]:
    fields = type(settings).model_fields
    for name, dev_value in DEV_SECRETS.items():
        if name in fields and _secret(getattr(settings, name)) == dev_value:
            yield f"{env_names(fields[name])[0]} is the documented dev default"
    for name in REQUIRED_IN_PRODUCTION:
        if name in fields and not _secret(getattr(settings, name)):
            yield f"{env_names(fields[name])[0]} is not set"


def enforce_deploy_policy(settings: SettingsBase, service: str) -> None:
    """Exit if `settings` are insecure in production; in dev, warn once and go on."""
    problems = insecure_settings(settings)
    if not problems:
        return
    if getattr(settings, "tickstream_env", "dev") == "production":
        raise InsecureSettings(
            f"tickstream {service}: refusing to start with TICKSTREAM_ENV=production: "
            + "; ".join(problems)
        )
    log.warning(
        "dev settings: %s (fine on a laptop; TICKSTREAM_ENV=production refuses them)",
        "; ".join(problems),
        extra={"insecure": problems},
    )
