"""The OpenAPI document names every status a route can answer. Litestar documents a handler's success
status and its validation 400; the errors the request boundary and the services raise (authentication,
CSRF, org visibility, not found, conflicts, limits, outages) are added here, with their JSON body."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import OpenAPIHeader, OpenAPIMediaType, OpenAPIResponse, Reference, Schema
from litestar.openapi.spec.enums import OpenAPIType

ERROR_SCHEMA = "ApiError"
# Any /api route: bad input, not signed in / bad token, CSRF or role, unknown or hidden org or object,
# body over the size limit, rate limits, a dependency (PostgreSQL, Redis) down.
API_ERRORS: dict[int, str] = {
    400: "Bad request: invalid input, with field-level messages in `extra`",
    401: "Not signed in, or an invalid or revoked token",
    403: "Forbidden: role, token scope, CSRF or Origin check",
    404: "Not found (a private org is not found to non-members)",
    413: "Request body too large",
    429: "Too many requests (see Retry-After)",
    503: "A dependency is unavailable; retry after Retry-After seconds",
}
# Writes may also conflict with the current state or be refused by a rule.
WRITE_ERRORS: dict[int, str] = {
    409: "Conflict with the current state",
    422: "Understood but refused by a rule (e.g. an Idempotency-Key reused with another body)",
}
_RETRY_AFTER = {"Retry-After": OpenAPIHeader(schema=Schema(type=OpenAPIType.INTEGER), description="seconds")}


def _error_response(description: str, code: int) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=description,
        content={"application/json": OpenAPIMediaType(schema=Reference(f"#/components/schemas/{ERROR_SCHEMA}"))},
        headers=_RETRY_AFTER if code in (429, 503) else None,
    )


def document_error_responses(app: Litestar) -> None:
    """Startup hook: add the error responses to the (cached) OpenAPI document before it is served."""
    openapi = app.openapi_schema
    components = openapi.components
    schemas = components.schemas if components.schemas is not None else {}
    schemas[ERROR_SCHEMA] = Schema(
        type=OpenAPIType.OBJECT,
        required=["status_code", "detail"],
        properties={
            "status_code": Schema(type=OpenAPIType.INTEGER),
            "detail": Schema(type=OpenAPIType.STRING),
            "extra": Schema(),
        },
    )
    components.schemas = schemas
    for path, item in (openapi.paths or {}).items():
        for method in ("get", "put", "post", "patch", "delete"):
            operation = getattr(item, method, None)
            if operation is None:
                continue
            if path.startswith("/api/"):
                codes = dict(API_ERRORS)
                if method != "get":
                    codes.update(WRITE_ERRORS)
            else:
                codes = {503: API_ERRORS[503]}
            responses = operation.responses if operation.responses is not None else {}
            no_content = responses.get("204")
            if isinstance(no_content, OpenAPIResponse):
                no_content.content = None  # 204 carries no body
            for code, description in codes.items():
                responses.setdefault(str(code), _error_response(description, code))
            operation.responses = responses
