"""One error hierarchy for the product; app.core.handlers turns each into a clear answer."""

from __future__ import annotations


class AppError(Exception):
    """An error with a stable machine code and a message a person can act on."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code


class BadRequest(AppError):
    status_code = 400
    code = "bad_request"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class ServiceUnavailable(AppError):
    status_code = 503
    code = "unavailable"


class UpstreamError(AppError):
    """An outside system failed; `retryable` says whether trying again may help."""

    status_code = 502
    code = "upstream_error"

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class ConfigurationError(AppError):
    """The installation is misconfigured (bad URL, unreachable database, default secret)."""

    code = "configuration_error"
