"""Typed, frozen parameter dataclasses: the base every setting of the project is declared with.

A module that owns settings declares them once as a frozen dataclass deriving from :class:`Params`
(:mod:`openpose_lite.config` assembles them). After construction, every subclass alike:

* refuses a value that expands to more than :data:`MAX_CONFIG_VALUES` values (:func:`check_expansion`:
  a list repeated by YAML aliases costs nothing to hold and exponentially much to check or print);
* checks each value against its annotation, coercing where safe (int -> float, numeric strings, as
  YAML 1.1 reads ``1e-4``, lists -> tuples); a field annotated with a class must hold an instance;
* runs the ``_check`` of every class in the hierarchy, each on its own fields;
* raises ``ValueError`` naming ``section.field`` and the value cut short (:func:`brief`).

A :class:`CommandLineOptions` dataclass is also a command line: each :func:`option` field is ``--field-name``
(or its ``flag``), ``dest`` the field name; ``bool`` is ``store_true``, ``Literal`` gives ``choices``,
``tuple[int, ...]`` ``nargs="+"``, ``tuple[int, int]`` ``nargs=2``, and ``X | None`` is ``X``, left out while None.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import reprlib
import types
import typing
from typing import Any, Literal

from openpose_lite.bounded_yaml import MAX_CONFIG_VALUES, MAX_CONFIG_VALUES_ENV, too_many_config_values
from openpose_lite.io import env_limit

__all__ = ["CommandLineOptions", "Params", "brief", "check_expansion", "coerce", "fields_of", "option"]


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
    """ValueError ``<name>: expands to more than N values ...`` when ``value`` holds more than
    ``$OPENPOSE_LITE_MAX_CONFIG_VALUES`` (default :data:`MAX_CONFIG_VALUES`) values, each counted
    where it appears (a list reached twice counts twice); the count stops at the limit."""
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

    def _name(self, field_name: str) -> str:
        """How errors name a field."""
        return f"{self._section}.{field_name}"

    def _require(self, ok: bool, field_name: str, expected: str) -> None:
        if not ok:
            raise ValueError(f"{self._name(field_name)}: expected {expected}, got {brief(getattr(self, field_name))}")


def fields_of(obj: Any, cls: type) -> dict[str, Any]:
    """``{name: value}`` of ``obj`` for the fields of dataclass ``cls`` (``obj`` is a ``cls`` or derives from it)."""
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
    if not isinstance(value, bool) and isinstance(value, (int, float, str)):
        with contextlib.suppress(ValueError):
            return float(value)  # a string too: PyYAML follows YAML 1.1, where 1e-4 (no dot) is a string
    raise ValueError(f"{name}: expected a number, got {brief(value)}")


def coerce(value: Any, tp: Any, name: str) -> Any:
    """``value`` checked against the annotation ``tp`` (after :func:`check_expansion`), coerced where
    allowed; ValueError naming ``name`` otherwise."""
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


# ----------------------------------------------------------------------- command-line options
def option(default: Any, help: str, *, flag: str | None = None, metavar: str | tuple[str, ...] | None = None) -> Any:
    """A dataclass field that is also a command-line option (see the module docstring)."""
    return dataclasses.field(default=default, metadata={"help": help, "flag": flag, "metavar": metavar})


def _without_none(tp: Any) -> Any:
    """``X | None`` -> ``X``; any other annotation as it is."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _argparse_kwargs(tp: Any) -> dict[str, Any]:
    """argparse's ``type`` / ``nargs`` / ``choices`` / ``action`` of one annotation, ``None`` stripped."""
    origin = typing.get_origin(tp)
    if tp is bool:
        return {"action": "store_true"}
    if origin is Literal:
        choices = typing.get_args(tp)
        return {"choices": choices, "type": type(choices[0])}
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": args[0], "nargs": "+"}
        if len(set(args)) != 1:
            raise TypeError(f"a tuple option needs one item type, got {tp!r}")
        return {"type": args[0], "nargs": len(args)}
    if tp in (int, float, str):
        return {"type": tp}
    raise TypeError(f"no command-line form for the annotation {tp!r}")


def _spell(value: Any) -> str:
    """A value as the command line writes it (floats in full precision)."""
    return repr(float(value)) if isinstance(value, float) else str(value)


class CommandLineOptions:
    """Mixin of a dataclass whose :func:`option` fields are its command-line options."""

    @classmethod
    def _options(cls) -> list[tuple[dataclasses.Field, Any, str]]:
        """(field, annotation without None, flag) of every option field, in declaration order."""
        hints = typing.get_type_hints(cls)
        return [(f, _without_none(hints[f.name]), f.metadata["flag"] or "--" + f.name.replace("_", "-"))
                for f in dataclasses.fields(cls) if "help" in f.metadata]  # type: ignore[arg-type]

    @classmethod
    def flag_of(cls, name: str) -> str:
        """The command-line flag of field ``name``."""
        return next(flag for f, _, flag in cls._options() if f.name == name)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One argparse option per field; the help shows the default unless it is None or False."""
        for f, tp, flag in cls._options():
            kwargs = _argparse_kwargs(tp)
            help_text = f.metadata["help"]
            if f.default is not None and f.default is not False:
                shown = " ".join(map(str, f.default)) if isinstance(f.default, tuple) else str(f.default)
                help_text += f" (default: {shown})"
            if "action" not in kwargs and f.metadata["metavar"] is not None:
                kwargs["metavar"] = f.metadata["metavar"]
            parser.add_argument(flag, dest=f.name, default=f.default, help=help_text, **kwargs)

    @classmethod
    def from_args(cls, args: argparse.Namespace, **fields: Any):
        """The instance the parsed options describe, with ``fields`` replacing or adding values (its own
        checks name a bad value)."""
        return cls(**{**{f.name: getattr(args, f.name) for f, _, _ in cls._options()}, **fields})

    def command_args(self) -> list[str]:
        """The options that rebuild this instance: every field spelled out, None and False ones left out."""
        argv: list[str] = []
        for f, _, flag in self._options():
            value = getattr(self, f.name)
            if value is None or value is False:
                continue
            if value is True:
                argv.append(flag)
            elif isinstance(value, tuple):
                argv += [flag, *(_spell(v) for v in value)]
            else:
                argv += [flag, _spell(value)]
        return argv
