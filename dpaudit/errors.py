"""One root error for everything dpaudit expects to go wrong.

The CLI turns any :class:`DpauditError` into one line on stderr and exit code 2
(:class:`LeakageThresholdExceeded` and :class:`PrivacyViolation` are results, not
input errors, and exit 1). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class DpauditError(Exception):
    """Root of every expected failure; ``exit_code`` is what the CLI returns."""

    exit_code = 2


class InputError(DpauditError, ValueError):
    """Bad user input, located as precisely as we can: file, line, field."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        where = ""
        if self.path is not None:
            where = self.path + (f":{line}" if line is not None else "")
        if field is not None:
            where = f"{where} field '{field}'" if where else f"field '{field}'"
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(InputError):
    """An option or config value outside its valid range (raised at construction)."""


class MissingFileError(DpauditError, FileNotFoundError):
    """A file or directory the user pointed at is not there; the message says what to run."""


class MissingDependencyError(DpauditError, ImportError):
    """An optional package is missing; the message carries the exact pip command."""


class PrivacyViolation(DpauditError):
    """Empirical leakage above the accountant's promise: a bug in training or accounting."""

    exit_code = 1


class LeakageThresholdExceeded(DpauditError):
    """A CI gate threshold failed."""

    exit_code = 1
