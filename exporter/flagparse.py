"""The argument parser of every view (serve, diagnose, replay) and the type functions of its typed flags.

argparse's own error path prints the whole usage (every flag: 38 lines for the server) before the one line
that matters, and names a type function's Python name ("invalid _positive_seconds value") when it raises
ValueError. FlagParser prints one short usage line and the error; the type functions here raise
ArgumentTypeError with a sentence, and argparse puts the flag in front of it.

Kept apart from exporter.options, which imports every source for its defaults: `replay` parses its flags
with this module too, and importing the sources would cost it about 0.1 s a run.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from typing import NoReturn

EXIT_USAGE = 2

# argparse words a flag's error "argument --a.b: ..." (both spellings for a --x/--no-x switch).
_ARGUMENT = re.compile(r"^argument (-[^:]*): ")


class FlagParser(argparse.ArgumentParser):
    """An ArgumentParser whose error is a short usage line and a message naming the flag, exit 2."""

    def short_usage(self) -> str:
        """`usage: PROG [flags] POSITIONAL... (see PROG --help)`: the positionals, not every flag."""
        words = [self.prog, "[flags]"]
        for action in self._actions:
            if action.option_strings or action.help == argparse.SUPPRESS:
                continue
            name = action.metavar if isinstance(action.metavar, str) else action.dest
            words.append(f"{name}..." if action.nargs in ("+", "*") else name)
        return f"usage: {' '.join(words)} (see {self.prog} --help)"

    def error(self, message: str) -> NoReturn:
        message = _ARGUMENT.sub(r"\1: ", message)
        self.exit(EXIT_USAGE, f"{self.short_usage()}\n{self.prog}: error: {message}\n")


def _number(value: str, what: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"must be {what}, not {value!r}")
    return number


def positive_seconds(value: str) -> float:
    """A timeout: 0 or less would fail every read, and `inf` or `nan` never end one."""
    seconds = _number(value, "a positive number of seconds")
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {value!r}")
    return seconds


def non_negative_seconds(value: str) -> float:
    """A window: 0 is empty (nothing counts), a negative one means nothing."""
    seconds = _number(value, "a number of seconds, 0 or more")
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more, not {value!r}")
    return seconds


def _whole_number(what: str) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = -1
        if number < 0:
            raise argparse.ArgumentTypeError(f"must be {what}, not {value!r}")
        return number

    return parse


count = _whole_number("a whole number, 0 or more")
uid = _whole_number("a numeric user id (0 or more)")
