"""URL path converters."""

from __future__ import annotations


class BoundedIntConverter:
    """A positive database id of at most 18 digits, so it always fits a signed 64-bit column.

    Django's `int` converter takes any number of digits: a 20-digit id reached the database
    and raised OverflowError (a 500) instead of a 404.
    """

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)
