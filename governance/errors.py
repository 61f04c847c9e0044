"""The one error hierarchy of Tollhouse.

Every error a client can see is a `TollhouseError` carrying the HTTP status and the
OpenAI error ``type``/``code`` it is rendered with (see `proxy.errors`). Library errors
are converted at the boundary where they occur, with ``raise ... from exc``.
"""

from __future__ import annotations


class TollhouseError(Exception):
    """Base class: a message safe to show a client, plus its wire classification."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        if code is not None:
            self.code = code
        self.param = param


class ConfigError(TollhouseError):
    """The configuration is invalid; start-up stops with this message."""

    code = "invalid_configuration"


class InvalidRequestError(TollhouseError):
    status = 400
    type = "invalid_request_error"


class AuthenticationError(TollhouseError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDeniedError(TollhouseError):
    status = 403
    type = "permission_error"
    code = "model_not_permitted"


class NotFoundError(TollhouseError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class ServiceUnavailableError(TollhouseError):
    status = 503
    type = "service_unavailable"


class AuditUnavailableError(ServiceUnavailableError):
    """The audit store cannot make a record durable: the request is refused (fail closed)."""

    code = "audit_unavailable"


class PolicyViolationError(InvalidRequestError):
    """The active policy refuses this request's content (``code`` says which rule kind)."""

    code = "policy_violation"


class PolicyUnavailableError(ServiceUnavailableError):
    """No usable active policy: refuse rather than serve ungoverned."""

    code = "policy_unavailable"


class PiiUnavailableError(ServiceUnavailableError):
    """PII analysis failed or timed out for a request the policy protects (fail closed)."""

    code = "pii_unavailable"


class LimitExceededError(TollhouseError):
    """A budget or rate limit refuses the request (429). ``headers`` go on the response:
    ``Retry-After`` in whole seconds until the limit resets, plus what the limit was."""

    status = 429

    def __init__(
        self,
        message: str,
        *,
        type: str,
        code: str,
        retry_after_s: int,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, type=type, code=code)
        self.retry_after_s = retry_after_s
        self.headers = {"Retry-After": str(max(1, retry_after_s)), **(headers or {})}


class BudgetExceededError(LimitExceededError):
    """A hard budget limit is reached; the message names the budget and when it resets."""


class RateLimitedError(LimitExceededError):
    """A requests- or tokens-per-minute limit is reached for this minute."""


class UpstreamError(TollhouseError):
    """An upstream failed. ``retryable`` says whether another attempt may help."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        retryable: bool | None = None,
        retry_after_s: float | None = None,
        upstream_status: int | None = None,
    ) -> None:
        super().__init__(message, status=status, type=type, code=code, param=param)
        if retryable is not None:
            self.retryable = retryable
        self.retry_after_s: float | None = retry_after_s
        self.upstream_status = upstream_status


class UpstreamConnectError(UpstreamError):
    code = "upstream_unreachable"
    retryable = True


class UpstreamRefusedError(UpstreamConnectError):
    """No connection could be made at all (refused, unresolvable, connect timeout)."""


class UpstreamTimeoutError(UpstreamError):
    status = 504
    type = "timeout"
    code = "upstream_timeout"


class UpstreamStatusError(UpstreamError):
    """The upstream answered with an error status; 429 and 5xx are retryable."""


class NoPermittedUpstreamError(UpstreamError):
    """Every deployment the policy permits for a request failed, and the remaining ones
    send data where the policy forbids: refused rather than sent there."""

    status = 503
    type = "service_unavailable"
    code = "no_permitted_upstream"


class UpstreamProtocolError(UpstreamError):
    """The upstream's answer could not be understood (malformed JSON or SSE)."""

    code = "upstream_bad_response"
