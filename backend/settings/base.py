"""The base of every settings class: read from the environment, and written back to it.

A parent process (the launcher, the test harness, chaos, the benchmarks) hands its settings to a
child through environment variables. `to_env()` is the one place that knows how: by each field's
environment name, so a child's pydantic-settings parses back exactly what the parent held.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

# Marks a field whose default belongs to each process (e.g. FEEDER_ID = host-pid): a child gets
# it only if the parent's value was set explicitly, never the parent's own default.
PER_PROCESS = {"per_process": True}


def split_csv(value: Any) -> Any:
    """`"a, b,,c"` → `["a", "b", "c"]`: lists travel through the environment as CSV."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def env_names(field: FieldInfo) -> list[str]:
    """Every environment name a field is read from, the preferred (written) one first."""
    alias = field.validation_alias
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    raise TypeError(f"settings field without an environment name: {field!r}")


def env_value(value: Any) -> str:
    """One value as its environment string (secrets revealed: the child needs them)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)  # numbers (repr: floats round-trip exactly), paths, literals


def _is_per_process(field: FieldInfo) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("per_process"))


class SettingsBase(BaseSettings):
    """Settings read from the environment (no .env file); unknown variables are ignored."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    def _passed_on(self) -> dict[str, FieldInfo]:
        """The fields a child inherits: all but per-process defaults nobody set."""
        return {
            name: field
            for name, field in type(self).model_fields.items()
            if not (_is_per_process(field) and name not in self.model_fields_set)
        }

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings in a child process.

        Keyed by each field's environment name; secrets revealed, lists as CSV, None omitted
        (see `child_environment` for removing an inherited variable that None must hide).
        """
        env: dict[str, str] = {}
        for name, field in self._passed_on().items():
            value = getattr(self, name)
            if value is not None:
                env[env_names(field)[0]] = env_value(value)
        return env


def child_environment(
    settings: SettingsBase,
    overrides: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The full environment of a child process running with `settings`.

    `environ` (default: ours) minus every variable a settings field is read from, plus
    `settings.to_env()`, plus `overrides`. Dropping the inherited names first makes a None
    field really None in the child (e.g. no API_KEY) and stops an alias (DATABASE_URL) from
    competing with the name written (PG_URL).
    """
    env = dict(os.environ if environ is None else environ)
    for field in settings._passed_on().values():
        for env_name in env_names(field):
            for key in [key for key in env if key.upper() == env_name.upper()]:
                del env[key]
    env.update(settings.to_env())
    env.update(overrides or {})
    return env
