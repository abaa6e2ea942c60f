"""The command-line flags of the settings: one per field, typed from its annotation, named and described by
the field, under a heading per flag group (so no flag is declared twice)."""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Sequence
from typing import Any

from maskserve.config.fields import GROUPS
from maskserve.config.server import Settings


def parse_bool(value: str) -> bool:
    """KServe's strtobool: y/yes/t/true/on/1 and n/no/f/false/off/0."""
    lowered = value.strip().lower()
    if lowered in {"y", "yes", "t", "true", "on", "1"}:
        return True
    if lowered in {"n", "no", "f", "false", "off", "0"}:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {value!r}")


def _base_type(annotation: Any) -> Any:
    """``int | None`` -> int; Literal stays Literal; ``Annotated[T, ...]`` -> T."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return annotation


def add_settings_arguments(
    parser: argparse.ArgumentParser,
    groups: Sequence[str] = tuple(GROUPS),
    *,
    only: Sequence[str] | None = None,
) -> None:
    """A flag per settings field of ``groups`` (or per field named in ``only``), under a heading per group."""
    headings: dict[str, argparse._ArgumentGroup] = {}
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        group = str(extra.get("group"))
        if (only is not None and name not in only) or (only is None and group not in groups):
            continue
        if group not in headings:
            headings[group] = parser.add_argument_group(GROUPS[group])
        _add_argument(headings[group], name, field, extra)


def _add_argument(parser: argparse._ArgumentGroup, name: str, field: Any, extra: dict[str, Any]) -> None:
    kind = _base_type(field.annotation)
    default_note = f" (default: {field.default})" if field.default not in (None, False, ()) else ""
    kwargs: dict[str, Any] = {
        "dest": name,
        "default": argparse.SUPPRESS,
        "help": f"{field.description}{default_note}",
    }
    if extra.get("positional"):
        parser.add_argument(
            name, nargs="?", metavar=name.upper(), **{k: v for k, v in kwargs.items() if k != "dest"}
        )
        return
    if kind is bool:
        kwargs.update(type=parse_bool, nargs="?", const=True, metavar="BOOL")
    elif typing.get_origin(kind) in (tuple, list):
        kwargs.update(action="append", type=str)
    elif typing.get_origin(kind) is typing.Literal:
        kwargs.update(choices=list(typing.get_args(kind)))
    else:
        kwargs.update(type=kind)
    aliases = [str(a) for a in extra.get("aliases", [])]
    parser.add_argument(f"--{name}", *aliases, **kwargs)
