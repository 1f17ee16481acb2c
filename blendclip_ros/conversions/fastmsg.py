"""Making rclpy messages without their generated Python constructors, for per-frame hot paths.

rosidl_generator_py's `__init__` runs a property setter per field, imports the nested message classes
on every call and builds default sub-messages that the caller then replaces: a LabelledObject costs
about 9 us, a Pose 4.5 us, a LabelHypothesis 2.7 us; for 64 objects with top-5 that is most of a
millisecond. Every generated class (Humble, Jazzy, Kilted) keeps field `f` in the slot `_f`, which is
what the property returns and what serialisation reads, so an instance whose slots are all filled is
the same message (equal, same bytes on the wire; tests/node/test_fast_paths.py) at a fraction of the
cost. `maker(cls)` hands out such blank instances only for classes with that layout and with field
checks off (ROS_PYTHON_CHECK_FIELDS unset); otherwise it returns None and callers build the usual way.
A blank instance has no field values: the caller must set every `_<field>` slot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_EXTRA_SLOTS = {'_check_fields'}  # the one non-field slot (Jazzy+); Humble has none
_MAKERS: dict[type, Callable[[], Any] | None] = {}


def maker(cls: type) -> Callable[[], Any] | None:
    """A function returning blank instances of `cls` (see the module note), or None if not safe."""
    if cls not in _MAKERS:
        _MAKERS[cls] = _make_maker(cls)
    return _MAKERS[cls]


def _make_maker(cls: type) -> Callable[[], Any] | None:
    try:
        fields = set(cls.get_fields_and_field_types())
        slots = set(cls.__slots__)
        proto = cls()
    except Exception:  # noqa: BLE001 - not a generated message class: build it the usual way
        return None
    if slots - _EXTRA_SLOTS != {f'_{name}' for name in fields}:
        return None
    if getattr(proto, '_check_fields', False):  # the user asked for checked fields: keep the setters
        return None
    new = object.__new__
    if '_check_fields' in slots:
        def blank():
            obj = new(cls)
            obj._check_fields = False
            return obj
        return blank
    return lambda: new(cls)
