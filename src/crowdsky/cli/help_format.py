"""How ``crowdsky --help`` shows arguments and flags.

Typer 0.29's help prints a type for every parameter, ``<bool>`` for an on/off flag
that takes no value, and writes a required argument as ``{files}...`` on the usage
line. :class:`CrowdskyGroup`, the root command's class, walks the finished command
tree once and gives its parameters the conventional look: no type for flags,
``FILES...`` / ``[FOLDER]`` on usage lines, ``<path>...`` for an argument taking
several paths.
"""

from __future__ import annotations

from typing import Any, get_args

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption


class _Argument(TyperArgument):
    """An argument written ``NAME`` (required), ``[NAME]`` (optional), ``NAME...`` (several)."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw.upper()
        if self.nargs != 1:
            name += "..."
        return name if self.required else f"[{name}]"

    def display_type_rich(self, ctx: typer.Context) -> str | None:
        if self.type_descriptor.is_list:
            (element,) = get_args(self.type_descriptor.annotation) or (str,)
            return f"<{self._bare_type(element).lower()}>..."
        return super().display_type_rich(ctx)


class _Flag(TyperOption):
    """An on/off flag: it takes no value, so the help shows no type."""

    def display_type_rich(self, ctx: typer.Context) -> str | None:
        return None


def tidy_help(command: Any) -> None:
    """Give every parameter of ``command`` and its sub-commands the conventional look."""
    help_option = command.get_help_option(typer.Context(command))  # made once, then cached
    for param in [*command.params, help_option]:
        if type(param) is TyperArgument:
            param.__class__ = _Argument
        elif type(param) is TyperOption and param.is_flag and not param.count:
            param.__class__ = _Flag
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)


class CrowdskyGroup(TyperGroup):
    """The root ``crowdsky`` command: Typer's group, with :func:`tidy_help` applied."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        tidy_help(self)
