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
* raises ``ValueError`` naming ``section.field`` (``_section`` is the config section's name).

Fields whose annotation is a class (a Skeleton, a nested Params) must hold an instance of it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal

__all__ = ["Params", "coerce", "fields_of"]


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
            raise ValueError(f"{self._section}.{field_name}: expected {expected}, got {value!r}")


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
        raise ValueError(f"{name}: expected {type_name(tp)}, got {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:  # tuple[T, ...]: any length
        item_types = [args[0]] * len(value)
    else:  # tuple[T1, T2]: exactly that many items
        if len(value) != len(args):
            raise ValueError(f"{name}: expected {len(args)} values, got {value!r}")
        item_types = list(args)
    return tuple(coerce(v, t, f"{name}[{i}]") for i, (v, t) in enumerate(zip(value, item_types)))


def _coerce_number(value: Any, tp: type, name: str) -> Any:
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}: expected an integer, got {value!r}")
        return int(value)
    if isinstance(value, bool):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        # PyYAML follows YAML 1.1, where 1e-4 (no dot) is a string, not a float.
        try:
            return float(value)
        except ValueError:
            pass
    raise ValueError(f"{name}: expected a number, got {value!r}")


def coerce(value: Any, tp: Any, name: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it, coerced where allowed."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if not any(value == c and type(value) is type(c) for c in choices):
            raise ValueError(f"{name}: expected one of {', '.join(repr(c) for c in choices)}, got {value!r}")
        return value
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, name)
            except ValueError:
                continue
        raise ValueError(f"{name}: expected {type_name(tp)}, got {value!r}")
    if origin is tuple:
        return _coerce_tuple(value, tp, name)
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected true or false, got {value!r}")
        return value
    if tp in (int, float):
        return _coerce_number(value, tp, name)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise ValueError(f"{name}: expected a {tp.__name__}, got {type(value).__name__}")
        return value
    raise TypeError(f"{name}: unsupported annotation {tp!r}")
