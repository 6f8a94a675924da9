"""Column configs shared by the app's tables, so a count, a sequence number or a time of day
reads the same in every table that shows one.

Each helper takes `column=label` pairs and returns the configs in that order, ready to splice
into a `column_config` dict (`{..., **counts(sent="Sent"), ...}`).
"""

from __future__ import annotations

import streamlit as st
from streamlit.elements.lib.column_types import ColumnConfig

TIME_OF_DAY_FORMAT = "HH:mm:ss.SSS"  # a table of recent events needs the milliseconds, not the date


def counts(**labels: str) -> dict[str, ColumnConfig]:
    """Running totals with the reader's thousands separators."""
    return {
        column: st.column_config.NumberColumn(label, format="localized")
        for column, label in labels.items()
    }


def whole_numbers(**labels: str) -> dict[str, ColumnConfig]:
    """Identifiers and small counts (sequence numbers): digits only, no separators."""
    return {
        column: st.column_config.NumberColumn(label, format="%d")
        for column, label in labels.items()
    }


def times_of_day(**labels: str) -> dict[str, ColumnConfig]:
    """Datetimes shown as time of day to the millisecond (the label names the zone)."""
    return {
        column: st.column_config.DatetimeColumn(label, format=TIME_OF_DAY_FORMAT)
        for column, label in labels.items()
    }
