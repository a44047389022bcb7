"""Checks of values where they enter (a config, a constructor's arguments), shared so that one kind of value
is refused in one way everywhere."""


def check_int(value, what: str, at_least: int = 1) -> int:
    """``value`` if it is an int >= ``at_least``; a bool (``True`` is an int to Python) or anything else is
    refused with a ``ValueError`` naming ``what`` and the value."""
    if isinstance(value, bool) or not isinstance(value, int) or value < at_least:
        raise ValueError(f'{what} must be an int >= {at_least}, got {value!r}')
    return value
