"""The API's errors: JSON `{"code", "message"}` with the status that says what went wrong, never a traceback."""

from __future__ import annotations

from starlette.responses import JSONResponse


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse({"code": self.code, "message": self.message}, self.status, headers=self.headers)


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid", message)


def unauthenticated(message: str = "authentication required: send `Authorization: Bearer TOKEN`") -> ApiError:
    return ApiError(401, "unauthenticated", message, {"WWW-Authenticate": "Bearer"})


def forbidden(missing: str) -> ApiError:
    return ApiError(403, "forbidden", f"missing permission {missing}")


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", what)


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def too_many(retry_after: int) -> ApiError:
    return ApiError(
        429, "rate_limited", f"too many failed logins: try again in {retry_after} s", {"Retry-After": str(retry_after)}
    )


# HTTP statuses Starlette's router raises itself, as codes of ours.
STATUS_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large", 503: "unavailable"}
