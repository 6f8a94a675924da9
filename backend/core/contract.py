"""The base of every model that crosses a boundary: API answers, bus events, the view W.

An unknown field is an error, so a field renamed on one side fails where the other side reads
it instead of being silently dropped; and an instance never changes once built, so a view or an
event can be shared between threads and readers without a defensive copy.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Contract(BaseModel):
    """Strict (`extra="forbid"`) and immutable (`frozen`); subclasses may add to the config."""

    model_config = ConfigDict(extra="forbid", frozen=True)
