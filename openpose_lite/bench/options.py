"""Command-line options declared by a frozen dataclass's fields: one list that builds, parses and prints them.

A field declared with :func:`option` carries its help text (and, where the default spelling
does not fit, its flag and metavar); its annotation gives the rest:

=============================== =====================================================
annotation                      argparse
=============================== =====================================================
``bool`` (default False)        ``action="store_true"``
``Literal["a", "b"]``           ``choices=("a", "b")``
``tuple[int, ...]``             ``type=int, nargs="+"``
``tuple[int, int]``             ``type=int, nargs=2``
``int`` / ``float`` / ``str``   ``type=...``
``X | None`` (default None)     as ``X``, left out of the command line while None
=============================== =====================================================

:class:`CommandLineOptions` turns those fields into options (:meth:`~CommandLineOptions.add_arguments`),
an ``argparse.Namespace`` back into the dataclass (:meth:`~CommandLineOptions.from_args`, so the
dataclass validates the values) and an instance into the arguments that rebuild it
(:meth:`~CommandLineOptions.command_args`). The flag defaults to ``--`` + the field name with
dashes; the argparse ``dest`` is always the field name.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Literal

__all__ = ["CommandLineOptions", "option"]

_HELP, _FLAG, _METAVAR = "help", "flag", "metavar"


def option(default: Any, help: str, *, flag: str | None = None, metavar: str | tuple[str, ...] | None = None) -> Any:
    """A dataclass field that is also a command-line option (see the module docstring)."""
    metadata = {_HELP: help, _FLAG: flag, _METAVAR: metavar}
    return dataclasses.field(default=default, metadata=metadata)


def _without_none(tp: Any) -> Any:
    """``X | None`` -> ``X``; any other annotation as it is."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _argparse_kwargs(tp: Any) -> dict[str, Any]:
    """``type`` / ``nargs`` / ``choices`` / ``action`` of one annotation (None already stripped)."""
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
        out = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if _HELP in f.metadata:
                out.append((f, _without_none(hints[f.name]), f.metadata[_FLAG] or "--" + f.name.replace("_", "-")))
        return out

    @classmethod
    def flag_of(cls, name: str) -> str:
        """The command-line flag of field ``name``."""
        for f, _, flag in cls._options():
            if f.name == name:
                return flag
        raise KeyError(name)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One argparse option per field; the help shows the default unless it is None or False."""
        for f, tp, flag in cls._options():
            kwargs = _argparse_kwargs(tp)
            help_text = f.metadata[_HELP]
            if f.default is not None and f.default is not False:
                shown = " ".join(map(str, f.default)) if isinstance(f.default, tuple) else str(f.default)
                help_text += f" (default: {shown})"
            if "action" not in kwargs and f.metadata[_METAVAR] is not None:
                kwargs["metavar"] = f.metadata[_METAVAR]
            parser.add_argument(flag, dest=f.name, default=f.default, help=help_text, **kwargs)

    @classmethod
    def from_args(cls, args: argparse.Namespace):
        """The instance the parsed options describe (its own checks name a bad value)."""
        return cls(**{f.name: getattr(args, f.name) for f, _, _ in cls._options()})

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
