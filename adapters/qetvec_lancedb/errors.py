"""Exceptions of the LanceDB adapter; each message names the table, column or file at fault.

All derive from `QETLanceError`; they also derive from the builtin a caller would expect
(ValueError for bad data, RuntimeError for state problems), so generic handlers still work.
"""
from __future__ import annotations


class QETLanceError(Exception):
    """Base class of every error raised by `qetvec_lancedb`."""


class VectorColumnError(QETLanceError, ValueError):
    """The vector column is missing, null, or not a list of floats."""


class DimensionMismatchError(QETLanceError, ValueError):
    """Vectors or a query whose length differs from the table's dimension."""


class NotTrainedError(QETLanceError, RuntimeError):
    """The table has no QET codes yet, or a given quantizer is untrained."""


class QuantizerFileError(QETLanceError, RuntimeError):
    """The quantizer file a table points to is missing, corrupt, or not the one it was encoded with."""
