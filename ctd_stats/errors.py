"""Exceptions and exit codes shared by the whole package."""

from __future__ import annotations

#: Exit code: success / compliant.
EXIT_OK = 0
#: Exit code: nothing could be certified (fail-closed result still written) or a violation was found.
EXIT_NOT_CERTIFIED = 1
#: Exit code: bad input (spec, table, log, arguments).
EXIT_BAD_INPUT = 2


class CTDInputError(ValueError):
    """Bad user input. The message names the field (and file/line where there is one).

    Subclasses ``ValueError`` so that library callers can catch the standard type; the command
    line turns it into exit code 2.
    """
