"""The console script and `python -m migrate_wrapper`: the app with every command module registered on it."""

from __future__ import annotations

import sys

# Importing a command module registers its commands, in this order in --help.
from migrate_wrapper.cli import run_commands  # noqa: F401, I001
from migrate_wrapper.cli import tool_commands  # noqa: F401
from migrate_wrapper.cli import lint_command  # noqa: F401
from migrate_wrapper.cli.app import app


def main() -> None:
    registered = app.registered_commands
    app.registered_commands = _invoked(registered, sys.argv[1:])
    try:
        app()
    finally:
        app.registered_commands = registered


def _invoked(commands: list, args: list[str]) -> list:
    """Only the command the words name, when they name one: Typer builds a Click command from every registered
    command's signature on each start (about 7 ms for all of them, on every run). Its parsing, help and errors are
    the same; anything else (no command, --help, an unknown name) gets the whole app."""
    from typer.main import get_command_name

    words = iter(args)
    for word in words:
        if word == "--project-dir":
            next(words, None)  # its value
        elif not word.startswith("-"):
            chosen = [c for c in commands if (c.name or get_command_name(c.callback.__name__)) == word]
            return chosen if len(chosen) == 1 else commands
        elif word in ("--help", "--"):
            return commands
    return commands


def entry() -> None:
    """The console script and `python -m migrate_wrapper`: main(), then leave without the interpreter's teardown.

    Freeing pydantic's and psycopg's modules at exit costs ~60 ms on every run. Nothing is left to do by then:
    connections are closed by the verbs, telemetry was flushed by @edge, and the streams are flushed here.
    """
    import logging
    import os

    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if code is not None and not isinstance(code, int):  # sys.exit("message"): print it, exit 1, as Python does
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said there
            pass
    os._exit(code or 0)
