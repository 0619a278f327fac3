"""Typed, frozen parameter dataclasses: the base every setting of the project is declared with.

A module that owns some settings (the codecs, the augmentations, the grouping) declares them
once as a frozen dataclass deriving from :class:`Params`; :mod:`openpose_lite.config` assembles
those classes into the YAML configuration, and the objects that use the settings derive from
the same class or take it, so no field list is ever written twice.

What :class:`Params` does after construction, for every subclass alike:

* checks each value against its annotation and coerces where that is safe: ints where a float
  is expected, numeric strings (YAML 1.1 reads ``1e-4`` as a string), lists -> tuples; choice
  fields (``Literal``) list the valid values in their error;
* runs the ``_check`` of every class in the hierarchy (each checks only its own fields), so a
  section that combines two owners' parameters checks both sets of rules;
* raises ``ValueError`` naming ``section.field`` (``_section`` is the config section's name),
  showing the value cut short (:func:`brief`);
* refuses a value that expands to more than :data:`MAX_CONFIG_VALUES` values
  (:func:`check_expansion`) before checking it: a list repeated by YAML aliases or by shared
  references in a stored config costs nothing to hold and exponentially much to check or print.

Fields whose annotation is a class (a Skeleton, a nested Params) must hold an instance of it.
"""

from __future__ import annotations

import dataclasses
import reprlib
import types
import typing
from typing import Any, Literal

from openpose_lite.bounded_yaml import MAX_CONFIG_VALUES, MAX_CONFIG_VALUES_ENV, too_many_config_values
from openpose_lite.io import env_limit

__all__ = ["Params", "brief", "check_expansion", "coerce", "fields_of"]


class _Brief(reprlib.Repr):
    def repr_int(self, x: int, level: int) -> str:
        # repr() of an int of thousands of digits is refused (ValueError) or quadratic
        return repr(x) if x.bit_length() <= 64 else f"<an integer of {x.bit_length()} bits>"


_BRIEF = _Brief()
_BRIEF.maxlevel, _BRIEF.maxstring, _BRIEF.maxother = 3, 60, 60
_BRIEF.maxlist = _BRIEF.maxtuple = _BRIEF.maxdict = _BRIEF.maxset = _BRIEF.maxfrozenset = 8


def brief(value: Any) -> str:
    """``repr(value)`` cut short (``[1, 2, 3, 4, 5, 6, 7, 8, ...]``), for messages: its cost is bounded
    whatever ``value`` holds (the full repr of an aliased YAML list runs to gigabytes)."""
    return _BRIEF.repr(value)


def check_expansion(value: Any, name: str) -> None:
    """Refuse ``value`` when it holds more than ``$OPENPOSE_LITE_MAX_CONFIG_VALUES`` (default
    :data:`MAX_CONFIG_VALUES`) values, each counted where it appears (a list reached twice counts
    twice, a list that holds itself without end); the count stops at the limit.

    Raises ValueError ``<name>: expands to more than N values ...`` saying how to raise the limit.
    """
    if not isinstance(value, (list, tuple, dict)):
        return
    limit = env_limit(MAX_CONFIG_VALUES_ENV, MAX_CONFIG_VALUES)
    count, pending = 0, [value]
    while pending:
        item = pending.pop()
        count += 1
        if count > limit:
            raise ValueError(f"{name}: {too_many_config_values(limit)}")
        if isinstance(item, (list, tuple)):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())


class Params:
    """Base of the parameter dataclasses (subclasses are ``@dataclass(frozen=True)``)."""

    _section: typing.ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = coerce(getattr(self, f.name), hints[f.name], f"{self._section}.{f.name}")
            # Frozen dataclass: coercion (int -> float, list -> tuple) has to bypass __setattr__.
            object.__setattr__(self, f.name, value)
        # Each class in the hierarchy checks the fields it declares, bases first.
        for klass in reversed(type(self).__mro__):
            check = vars(klass).get("_check")
            if check is not None:
                check(self)

    def _require(self, ok: bool, field_name: str, expected: str) -> None:
        if not ok:
            value = getattr(self, field_name)
            raise ValueError(f"{self._section}.{field_name}: expected {expected}, got {brief(value)}")


def fields_of(obj: Any, cls: type) -> dict[str, Any]:
    """``{name: value}`` of ``obj`` for the fields that dataclass ``cls`` declares (``obj`` is a ``cls`` or derives from it)."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(cls)}


def type_name(tp: Any) -> str:
    """A readable name of an annotation, for error messages."""
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {type_name(typing.get_args(tp)[0])}"
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce_tuple(value: Any, tp: Any, name: str) -> tuple:
    args = typing.get_args(tp)
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{name}: expected {type_name(tp)}, got {brief(value)}")
    if len(args) == 2 and args[1] is Ellipsis:  # tuple[T, ...]: any length
        item_types = [args[0]] * len(value)
    else:  # tuple[T1, T2]: exactly that many items
        if len(value) != len(args):
            raise ValueError(f"{name}: expected {len(args)} values, got {brief(value)}")
        item_types = list(args)
    return tuple(_coerce(v, t, f"{name}[{i}]") for i, (v, t) in enumerate(zip(value, item_types)))


def _coerce_number(value: Any, tp: type, name: str) -> Any:
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}: expected an integer, got {brief(value)}")
        return int(value)
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected a number, got {brief(value)}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        # PyYAML follows YAML 1.1, where 1e-4 (no dot) is a string, not a float.
        try:
            return float(value)
        except ValueError:
            pass
    raise ValueError(f"{name}: expected a number, got {brief(value)}")


def coerce(value: Any, tp: Any, name: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it, coerced where allowed.

    Raises ValueError naming ``name``: a value of the wrong kind, or one that expands to more
    values than a config may (:func:`check_expansion`, checked first).
    """
    check_expansion(value, name)
    return _coerce(value, tp, name)


def _coerce(value: Any, tp: Any, name: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if not any(value == c and type(value) is type(c) for c in choices):
            raise ValueError(f"{name}: expected one of {', '.join(repr(c) for c in choices)}, got {brief(value)}")
        return value
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, name)
            except ValueError:
                continue
        raise ValueError(f"{name}: expected {type_name(tp)}, got {brief(value)}")
    if origin is tuple:
        return _coerce_tuple(value, tp, name)
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected true or false, got {brief(value)}")
        return value
    if tp in (int, float):
        return _coerce_number(value, tp, name)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected a string, got {brief(value)}")
        return value
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise ValueError(f"{name}: expected a {tp.__name__}, got {type(value).__name__}")
        return value
    raise TypeError(f"{name}: unsupported annotation {tp!r}")
