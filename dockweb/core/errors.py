"""Errors the control plane shows: what a host's engine answered, in the engine's own words, with an HTTP status."""

from __future__ import annotations

import docker.errors
import requests


class EngineError(Exception):
    """The engine refused or failed an action; message is the engine's sentence, status its HTTP category."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EngineNotFound(EngineError):
    status = 404


class EngineInvalid(EngineError):
    status = 400


class EngineConflict(EngineError):
    status = 409


class EngineUnavailable(EngineError):
    """The host's engine could not be reached, or did not answer in time."""

    status = 503


_BY_STATUS = {400: EngineInvalid, 404: EngineNotFound, 409: EngineConflict}


def from_docker(e: Exception, host_name: str, doing: str) -> EngineError:
    """Translate a docker-py or requests exception into an EngineError keeping the engine's message."""
    if isinstance(e, docker.errors.APIError):
        status = e.status_code or 500
        message = e.explanation or str(e)
        if isinstance(message, bytes):
            message = message.decode(errors="replace")
        cls = _BY_STATUS.get(status, EngineUnavailable if status == 503 else EngineError)
        return cls(str(message).strip())
    if isinstance(e, requests.exceptions.Timeout):
        return EngineUnavailable(f"the engine of host {host_name} did not answer in time while {doing}")
    if isinstance(e, (requests.exceptions.ConnectionError, ConnectionError, FileNotFoundError)):
        return EngineUnavailable(f"cannot reach the engine of host {host_name} while {doing}: {e}")
    if isinstance(e, docker.errors.DockerException):
        return EngineError(f"{doing} on host {host_name}: {e}")
    raise TypeError(f"not an engine error: {e!r}")


ENGINE_EXCEPTIONS = (docker.errors.DockerException, requests.exceptions.RequestException, ConnectionError,
                     FileNotFoundError)
