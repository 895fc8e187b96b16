"""Command-line options generated from a library dataclass, so each default lives there.

The contract: one flag per leaf field, ``--`` + the field name with ``_`` -> ``-``; typed
and defaulted from the dataclass; ``bool`` fields take ``--x/--no-x``; a ``tuple[T, T]``
field takes that many values, a ``tuple[T, ...]`` one or more; ``X | None`` fields default
to None; a field holding a dataclass is flattened (its leaf fields become flags, so leaf
names must be unique within a command; naming such a field in ``exclude`` leaves all of it
out, at its defaults). An ``str | None`` field reads ``none`` as None (and defaults to
``none`` when it is given ``choices``). Help texts come from a table (field name -> text)
that must cover every flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
_TUPLE_METAVARS = {2: ("MIN", "MAX"), 3: ("N1", "N2", "N3")}


def _leaves(
    cls: type, only: Collection[str] | None, exclude: Collection[str]
) -> Iterator[tuple[dataclasses.Field, Any, Any]]:
    """(field, type hint, default) of every leaf field of ``cls``, nested ones flattened."""
    hints = typing.get_type_hints(cls)
    defaults = cls()
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            if f.name not in exclude:  # a nested dataclass left out keeps its defaults
                yield from _leaves(hint, only, exclude)
        elif (only is None or f.name in only) and f.name not in exclude:
            yield f, hint, getattr(defaults, f.name)


def _optional(hint: Any) -> tuple[Any, bool]:
    """(the type inside ``X | None``, whether None is allowed)."""
    args = typing.get_args(hint)
    kinds = [a for a in args if a is not type(None)]
    if type(None) in args and len(kinds) == 1:
        return kinds[0], True
    return hint, False


def add_options(
    parser: argparse.ArgumentParser,
    cls: type,
    help: Mapping[str, str],
    *,
    title: str | None = None,
    only: Collection[str] | None = None,
    exclude: Collection[str] = (),
    choices: Mapping[str, Sequence[str]] | None = None,
    metavars: Mapping[str, str | tuple[str, ...]] | None = None,
) -> None:
    """Add a flag for every leaf field of ``cls`` (see the module docstring)."""
    target: Any = parser.add_argument_group(title) if title else parser
    choices, metavars = choices or {}, metavars or {}
    for f, hint, default in _leaves(cls, only, exclude):
        flag = "--" + f.name.replace("_", "-")
        kind, nullable = _optional(hint)
        spec: dict[str, Any] = {"help": help[f.name], "default": default}
        if f.name in metavars:
            spec["metavar"] = metavars[f.name]
        if kind is bool:
            spec["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is tuple:
            items = typing.get_args(kind)
            if items[-1] is Ellipsis:  # tuple[T, ...]: one or more values
                spec.update(nargs="+", type=items[0])
            else:
                spec.update(nargs=len(items), type=items[0])
                spec.setdefault("metavar", _TUPLE_METAVARS.get(len(items)))
            spec["default"] = None if default is None else list(default)
        elif f.name in choices:
            spec["choices"] = list(choices[f.name])
            if nullable and default is None and "none" in spec["choices"]:
                spec["default"] = "none"
        else:
            spec["type"] = kind
        target.add_argument(flag, **spec)


def read_options(
    args: argparse.Namespace,
    cls: type[T],
    *,
    only: Collection[str] | None = None,
    exclude: Collection[str] = (),
    **given: Any,
) -> T:
    """The ``cls`` instance the flags of :func:`add_options` describe (same ``only`` and
    ``exclude``; fields left out keep their defaults); ``given`` fields override them."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if f.name in given:
            values[f.name] = given[f.name]
        elif dataclasses.is_dataclass(hint):
            if f.name not in exclude:
                values[f.name] = read_options(args, hint, only=only, exclude=exclude)
        elif (only is None or f.name in only) and f.name not in exclude:
            value = getattr(args, f.name)
            kind, nullable = _optional(hint)
            if isinstance(value, list):
                value = tuple(value)
            elif nullable and kind is str and value == "none":
                value = None
            values[f.name] = value
    return cls(**values)
