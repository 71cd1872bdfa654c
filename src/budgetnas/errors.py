"""Errors that reach the user.

`UserError` means bad input: the CLI prints its message on one line and exits with code 2.
Anything else escaping a command is an internal error (exit code 1).
"""


class UserError(Exception):
    """Bad input from the user (file, field, option value). Exit code 2, no traceback."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None, fix: str | None = None):
        parts = [f"{where}: {message}" if where else message]
        if fix:
            parts.append(f"fix: {fix}")
        super().__init__(" — ".join(parts))


class ArchError(UserError):
    """An architecture file or genotype is inconsistent."""


def one_line(text: str) -> str:
    """Messages stay on one line whatever the user typed (a file name with a newline, say)."""
    return text.replace("\r", "\\r").replace("\n", "\\n")
