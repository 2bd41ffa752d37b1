"""Terminal plumbing of the CLI: errors with exit codes, secret input, progress on stderr.

Exit codes: 0 success; 1 a user error (bad input, wrong passphrase, not
enough coins, a product that fails its check); 2 the node is unreachable or
answered with an error the wallet cannot attribute to the user.
"""

from __future__ import annotations

import getpass
import sys
import time
from pathlib import Path
from typing import TextIO

EXIT_OK = 0
EXIT_USER = 1
EXIT_NODE = 2
SPINNER = "|/-\\"


class CliError(Exception):
    """An error shown to the user: a message saying what happened and what to do next, and an exit code."""

    exit_code = EXIT_USER

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InsufficientFunds(CliError):
    """Not enough coins for a transfer (exit 1, nothing sent)."""


def read_text_file(path: str, what: str) -> str:
    """The whole text of ``path``; ``CliError`` naming the file when it cannot be read."""
    try:
        return Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"cannot read the {what} file {path}: {getattr(e, 'strerror', None) or e}") from None


def read_secret_file(path: str, what: str) -> str:
    """The first line of ``path`` (without its line end); for scripts."""
    lines = read_text_file(path, what).splitlines()
    return lines[0] if lines else ""


def ask_secret(prompt: str, *, confirm: bool = False, what: str = "passphrase", flag: str = "--passphrase-file",
               allow_empty: bool = False) -> str:
    """Read a secret with a hidden prompt (twice when ``confirm``); needs a terminal."""
    if not sys.stdin.isatty():
        raise CliError(f"no terminal to ask for the {what}: run in a terminal, or pass {flag} FILE")
    try:
        first = getpass.getpass(prompt)
        if not first and not allow_empty:
            raise CliError(f"the {what} is empty; run the command again and type one")
        if confirm and getpass.getpass("Repeat it: ") != first:
            raise CliError(f"the two {what}s differ; nothing was changed. Run the command again")
    except EOFError:
        raise CliError(f"no {what} given; nothing was changed") from None
    return first


class Progress:
    """One status line on stderr: rewritten in place on a terminal, printed on change otherwise."""

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self._last = ""
        self._width = 0
        self._spin = 0

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        elapsed = int(time.monotonic() - self.start)
        if self.tty:
            self._spin = (self._spin + 1) % 4
            line = f"{SPINNER[self._spin]} {text} ({elapsed} s)"
            pad = max(0, self._width - len(line))
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
            self.stream.flush()
        elif text != self._last:
            self.stream.write(f"{text} ({elapsed} s)\n")
            self.stream.flush()
        self._last = text

    def done(self, text: str | None = None) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r" + " " * self._width + "\r")
        if text:
            self.stream.write(text + "\n")
        self.stream.flush()
