"""Command-line tools that work on page files: ``freelist check`` and ``freelist inspect``.

(Being written; registers no commands yet.)
"""

from __future__ import annotations

import argparse

__all__ = ["add_commands"]


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the page-file subcommands on the ``freelist`` CLI's subparsers.

    Each subcommand sets ``func``: a callable taking the parsed namespace and
    returning the process exit code.
    """
    del sub
