"""Printing text that quotes tenant data: every line goes through the sanitising layer first."""

from __future__ import annotations

import click

from migrations.safety.sanitise import terminal_text


def echo(line: object = "", *, err: bool = False) -> None:
    """One line for the operator's terminal: no escape sequence or control character from a name gets
    through (OSC 8 links, OSC 52 clipboard writes, titles, cursor moves, forged newlines)."""
    click.echo(terminal_text(line), err=err)
