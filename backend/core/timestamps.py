"""The timestamp type of the JSON contracts (W, candles, gaps, bus events).

A string, not a `datetime`: the backend writes each stamp once with `us_to_iso` (microseconds,
`Z`), and carrying the same string through the models keeps stored and published bytes exactly as
they were; the schema still tells clients it is an RFC 3339 date-time.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

IsoTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
