"""Every exception Stethoscope raises on purpose.

StethError
├── UsageError          bad arguments or configuration; the CLI prints it and exits 2
├── DataError           a store or file that cannot be read as expected; exit 1
└── IngestError         a request the receivers cannot take
    ├── Rejected        permanent: malformed, too large, unauthorised (never retry)
    └── Overloaded      retryable: queues full or shutting down (retry after a pause)
"""

from __future__ import annotations


class StethError(Exception):
    """Base of every deliberate Stethoscope error."""


class UsageError(StethError):
    """Bad arguments or configuration, reported with the allowed values."""


class DataError(StethError):
    """A store, file or server answer that cannot be read as expected."""


class IngestError(StethError):
    """A request the receivers cannot take; `status` is the HTTP status to answer with."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class Rejected(IngestError):
    """Permanent: the same request will never succeed (bad data, too large, unauthorised)."""


class Overloaded(IngestError):
    """Retryable: the collector is busy; retry after `retry_after` seconds."""

    status = 503

    def __init__(self, message: str, *, retry_after: int = 1, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after
