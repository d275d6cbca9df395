"""The ETL's input errors."""

from __future__ import annotations


class InputError(ValueError):
    """The input cannot be loaded as given (a missing or headerless file, another time grain than the table's,
    nothing accepted by a full run); nothing was written. The message names the file or setting and what to
    do, never a value from the data."""
