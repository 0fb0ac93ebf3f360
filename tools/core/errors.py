"""One exception hierarchy for everything TAMO-RCA reads or talks to.

Why: the CLI, the MCP server and the agent all need to turn a failure into one line that names
*where* it came from (file and line, URL and status, field) without a traceback. Every error
raised by the data plane and the tools is a :class:`TamoError` carrying that source.
"""

from __future__ import annotations


class TamoError(Exception):
    """Base error; ``source`` says where the problem is (a path, ``path:line``, a URL)."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source

    def __str__(self) -> str:
        return f"{self.source}: {self.message}" if self.source else self.message


class ConfigError(TamoError):
    """Invalid configuration (settings file, environment variable, strategy YAML)."""


class InputError(TamoError):
    """A file or payload that cannot be parsed; ``source`` is ``path:line`` where known."""

    def __init__(self, message: str, *, path: str, line: int | None = None) -> None:
        src = f"{path}:{line}" if line is not None else path
        super().__init__(message, source=src)
        self.path = path
        self.line = line


class BackendError(TamoError):
    """A backend (Prometheus, Loki, Jaeger, Tempo, testbed, Kubernetes) failed or answered badly."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        src = f"{url} (HTTP {status})" if status is not None else url
        super().__init__(message, source=src)
        self.url = url
        self.status = status


class NotFoundError(TamoError):
    """A requested entity (trace id, service, case, window) has no data."""


class DatasetError(TamoError):
    """A labelled dataset is missing, incomplete or not what the adapter expects."""


class CheckpointError(TamoError):
    """A model checkpoint is corrupt or was made for another dataset, config or code version."""


class RepairError(TamoError):
    """A repair was refused (not allow-listed, not approved, pre-check failed) or failed."""
