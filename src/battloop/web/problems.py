"""Errors as RFC 9457 problem details (application/problem+json) that name the field."""

from __future__ import annotations

import logging

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.http import Http404, JsonResponse
from ninja import Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError

log = logging.getLogger("battloop.api")

PROBLEM_BASE = "https://battloop.invalid/problems/"


class FieldError(Schema):
    field: str
    message: str


class Problem(Schema):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] = []


class ApiProblem(Exception):
    """Raise from an endpoint to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str, errors: list[dict] | None = None, kind: str | None = None):
        self.status, self.title, self.detail, self.errors = status, title, detail, errors or []
        self.kind = kind or title.lower().replace(" ", "-")
        super().__init__(detail)


def problem(request, status: int, title: str, detail: str, errors=None, kind: str | None = None) -> JsonResponse:
    body = {"type": PROBLEM_BASE + (kind or title.lower().replace(" ", "-")), "title": title, "status": status,
            "detail": detail, "instance": request.path, "errors": errors or []}
    return JsonResponse(body, status=status, content_type="application/problem+json", json_dumps_params={"ensure_ascii": False})


def install(api) -> None:
    @api.exception_handler(ApiProblem)
    def _api_problem(request, exc: ApiProblem):
        return problem(request, exc.status, exc.title, exc.detail, exc.errors, exc.kind)

    @api.exception_handler(ValidationError)
    def _validation(request, exc: ValidationError):
        errors = []
        for e in exc.errors:
            loc = [str(p) for p in e.get("loc", []) if p not in ("body", "query", "path", "form", "file", "payload")]
            errors.append({"field": ".".join(loc) or "(request)", "message": e.get("msg", "invalid")})
        fields = ", ".join(e["field"] for e in errors)
        return problem(request, 422, "Invalid request", f"invalid value for: {fields}", errors, "invalid-request")

    @api.exception_handler(AuthenticationError)
    def _auth(request, exc):
        return problem(request, 401, "Unauthorized", "log in, or send a valid, unexpired API token as 'Authorization: Bearer …'",
                       kind="unauthorized")

    @api.exception_handler(HttpError)
    def _http(request, exc: HttpError):
        title = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed", 413: "Payload too large",
                 415: "Unsupported media type", 429: "Too many requests"}.get(exc.status_code, "Error")
        return problem(request, exc.status_code, title, str(exc))

    @api.exception_handler(Http404)
    def _404(request, exc):
        return problem(request, 404, "Not found", str(exc) or "no such object in your organization's scope")

    @api.exception_handler(ObjectDoesNotExist)
    def _dne(request, exc):
        return problem(request, 404, "Not found", "no such object in your organization's scope")

    @api.exception_handler(PermissionDenied)
    def _403(request, exc):
        return problem(request, 403, "Forbidden", str(exc) or "your role does not allow this")

    @api.exception_handler(Exception)
    def _500(request, exc):
        log.exception("unhandled error on %s", request.path)
        return problem(request, 500, "Internal error", "the server could not complete the request; it has been logged")


class RejectNulBytesMiddleware:
    """Refuse query parameters holding NUL bytes before they reach a view.

    PostgreSQL text cannot hold U+0000, so such a value would fail deep in a query as a
    server error; it is bad input and gets a 400 that names the parameter (problem+json on
    the API). Form fields are covered by Django's own ProhibitNullCharactersValidator.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        for key, values in request.GET.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                name = key.replace("\x00", "\\0")
                detail = f"query parameter {name!r} contains a NUL byte (U+0000), which no field accepts"
                if request.path.startswith("/api/"):
                    # the API authenticates first (a caller without credentials gets 401 whatever
                    # it sent) and then refuses the parameter: see refuse_nul_query
                    request.nul_query_param = (name, detail)
                    break
                from django.http import HttpResponseBadRequest

                return HttpResponseBadRequest(detail, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


def refuse_nul_query(request) -> None:
    """Raise the 400 for a NUL byte in a query parameter of an authenticated API request
    (found by :class:`RejectNulBytesMiddleware`)."""
    found = getattr(request, "nul_query_param", None)
    if found:
        name, detail = found
        raise ApiProblem(400, "Invalid request", detail, errors=[{"field": name, "message": "contains a NUL byte"}],
                         kind="invalid-request")
