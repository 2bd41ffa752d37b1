"""Terminal plumbing of the CLI: errors with exit codes, secret input, progress on stderr.

Exit codes: 0 success; 1 a user error (bad input, wrong passphrase, not
enough coins, a product that fails its check); 2 the node is unreachable or
answered with an error the wallet cannot attribute to the user.
"""

from __future__ import annotations

import getpass
import sys
import time
from collections.abc import Callable
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
    """One status line on stderr: rewritten in place on a terminal; plain lines otherwise.

    Without a terminal (a pipe, a log file, CI) a line that is rewritten in place
    would be printed once and then look frozen ("queued (0 s)" for minutes), so
    there a line is written when the text changes and then again every
    ``interval`` seconds while it stays the same, each with the time elapsed:
    a log always shows that the command is alive and how long it has waited.
    """

    def __init__(self, enabled: bool = True, stream: TextIO | None = None, *, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.interval = interval
        self.clock = clock
        self.start = clock()
        self._last = ""
        self._last_line_at = self.start
        self._width = 0
        self._spin = 0

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        now = self.clock()
        elapsed = int(now - self.start)
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
            self._last_line_at = now
        elif now - self._last_line_at >= self.interval:
            self.stream.write(f"{text} (still, {elapsed} s)\n")
            self.stream.flush()
            self._last_line_at = now
        self._last = text

    def done(self, text: str | None = None) -> None:
        if not self.enabled:
            return
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        if text:
            elapsed = int(self.clock() - self.start)
            self.stream.write(f"{text} (after {elapsed} s)\n" if self._last else text + "\n")
        self.stream.flush()
