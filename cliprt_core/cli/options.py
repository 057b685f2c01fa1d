"""
Command-line flags derived from config classes: each setting's flag comes from its definition.

``add_config_flags(parser, EvalConfig)`` adds ``--suite``, ``--max-steps``, ``--checkpoint``, ...
(flat names of :func:`cliprt_core.config.leaves`, help text and choices from the field), all
defaulting to None so that :func:`given_flags` returns only what the user typed; the values go
through the config system's own type checks when the config is built.
"""
from __future__ import annotations

import argparse
from typing import Any, Sequence

from cliprt_core.config import Leaf, leaves


def add_config_flags(parser: argparse.ArgumentParser, cls: type,
                     exclude: Sequence[str] = ()) -> None:
    """One flag per scalar setting of ``cls`` (``--name-with-dashes``)."""
    group = parser.add_argument_group(f'{cls.__name__} settings')
    for leaf in leaves(cls, exclude).values():
        group.add_argument(f"--{leaf.name.replace('_', '-')}", dest=leaf.name, default=None,
                           help=_help(leaf), **_kind(leaf))


def all_but(cls: type, names: Sequence[str]) -> tuple[str, ...]:
    """Return the ``exclude`` that keeps only the settings ``names`` of ``cls``."""
    return tuple(name for name in leaves(cls) if name not in names)


def given_flags(args: argparse.Namespace, cls: type, exclude: Sequence[str] = ()
                ) -> dict[str, Any]:
    """``{flat name: value}`` of the flags of ``cls`` that were given on the command line."""
    return {name: getattr(args, name) for name in leaves(cls, exclude)
            if getattr(args, name, None) is not None}


def _kind(leaf: Leaf) -> dict[str, Any]:
    base = leaf.base_type
    if base is bool:
        return {'action': argparse.BooleanOptionalAction}
    if base in (int, float):
        return {'type': base, 'metavar': base.__name__.upper()}
    if leaf.choices:
        return {'choices': leaf.choices}
    return {}


def _help(leaf: Leaf) -> str:
    text = leaf.description.replace('%', '%%')  # argparse formats help strings with %
    default = leaf.default
    if default in (None, '') or isinstance(default, bool):
        return text
    return f'{text} (default: {default})'
