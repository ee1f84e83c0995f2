"""One error body for every API error: ``{"error": {"code", "message", "fields"?}}`` (DESIGN.md §7).

drf-standardized-errors catches every exception of an API view (unhandled ones
become a 500 in the same shape); the formatter below reshapes its output, the
schema class documents that shape in the OpenAPI schema, and
``UnknownEndpointView`` gives unrouted ``/api/v1/...`` paths the same 404 body.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from drf_standardized_errors.formatter import ExceptionFormatter
from drf_standardized_errors.openapi import AutoSchema
from drf_standardized_errors.types import ErrorResponse
from rest_framework import exceptions, permissions, serializers
from rest_framework.request import Request
from rest_framework.views import APIView

VALIDATION_ERROR_CODE = "invalid"


class LiveHumanErrorFormatter(ExceptionFormatter):
    """Reshape drf-standardized-errors' output into the wire format.

    Validation errors carry ``fields``: a mapping from field name (dotted for
    nested fields, ``non_field_errors`` for the whole object) to its messages.
    """

    def format_error_response(self, error_response: ErrorResponse) -> Any:
        errors = error_response.errors
        if error_response.type == "validation_error":
            fields: dict[str, list[str]] = {}
            for error in errors:
                fields.setdefault(error.attr or "non_field_errors", []).append(error.detail)
            message = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in fields.items())
            return {"error": {"code": VALIDATION_ERROR_CODE, "message": message, "fields": fields}}
        first = errors[0]
        return {"error": {"code": first.code, "message": first.detail}}


_ERROR_PROPERTIES: dict[str, Any] = {
    "code": {"type": "string", "description": "Machine-readable, e.g. not_found, session_limit, throttled."},
    "message": {"type": "string", "description": "Human-readable, in the request's language."},
}


@extend_schema_field({"type": "object", "properties": _ERROR_PROPERTIES, "required": ["code", "message"]})
class _ErrorObjectField(serializers.JSONField):
    pass


@extend_schema_field(
    {
        "type": "object",
        "properties": {
            **_ERROR_PROPERTIES,
            "fields": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
                "description": "Field name → its error messages (absent for a body that could not be parsed).",
            },
        },
        "required": ["code", "message"],
    }
)
class _ValidationErrorObjectField(serializers.JSONField):
    pass


class ErrorResponseSerializer(serializers.Serializer):
    error = _ErrorObjectField()


class ValidationErrorResponseSerializer(serializers.Serializer):
    error = _ValidationErrorObjectField()


class ErrorFormatAutoSchema(AutoSchema):
    """drf-standardized-errors' schema (which error statuses each operation can return), in our body format.

    The two overridden hooks are the library's own extension points for error
    serializers and examples; its stock examples show its native format, so none are added.
    """

    def _get_error_response_serializer(self, status_code: str) -> type[serializers.Serializer]:
        return ValidationErrorResponseSerializer if status_code == "400" else ErrorResponseSerializer

    def _get_error_response_examples(self) -> list:
        return []


class UnknownEndpointView(APIView):
    """Any unrouted path under /api/v1/: a 404 in the API's error format rather than an HTML page."""

    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]
    throttle_classes: list = []
    schema = None  # not an endpoint: kept out of the OpenAPI schema

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        raise exceptions.NotFound(_("There is no API endpoint at this address."))
