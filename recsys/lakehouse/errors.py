"""Errors of the table layer; each message says what to do about it."""

from __future__ import annotations


class TableError(RuntimeError):
    """Base class of table-layer errors."""


class TableExistsError(TableError):
    """A write in mode ``error`` found the table already there."""


class TableNotFoundError(TableError):
    """The table (or the requested version) does not exist."""


class SchemaMismatchError(TableError):
    """A write's schema or partitioning differs from the table's."""


class ConcurrentWriteError(TableError):
    """The commit lost a race with another writer; the table is unchanged by this write."""


class UnsupportedTableError(TableError):
    """The table uses a Delta feature that reading its live files directly would get wrong."""
