"""Exceptions and exit codes shared by the whole package."""

from __future__ import annotations

#: Exit code: success / compliant.
EXIT_OK = 0
#: Exit code: nothing could be certified (fail-closed result still written) or a violation was found.
EXIT_NOT_CERTIFIED = 1
#: Exit code: bad input (spec, table, log, arguments) or environment (missing package, unwritable path).
EXIT_BAD_INPUT = 2
#: Exit code: an internal error (a bug); the traceback is printed with ``--debug``.
EXIT_INTERNAL = 3
#: Exit code: interrupted by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


class CTDInputError(ValueError):
    """Bad user input. The message names the field (and file/line where there is one).

    Subclasses ``ValueError`` so that library callers can catch the standard type; the command
    line turns it into exit code 2.
    """
