"""One error body for every API error: ``{"error": {"code", "message", "fields"?}}``."""

from __future__ import annotations

from typing import Any

from drf_standardized_errors.formatter import ExceptionFormatter
from drf_standardized_errors.types import ErrorResponse


class LiveHumanErrorFormatter(ExceptionFormatter):
    """Reshape drf-standardized-errors' output into the wire format of DESIGN.md §7.

    Validation errors carry ``fields``: a mapping from field name to its messages.
    """

    def format_error_response(self, error_response: ErrorResponse) -> Any:
        errors = error_response.errors
        if error_response.type == "validation_error":
            fields: dict[str, list[str]] = {}
            for error in errors:
                fields.setdefault(error.attr or "non_field_errors", []).append(error.detail)
            message = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in fields.items())
            return {"error": {"code": "invalid", "message": message, "fields": fields}}
        first = errors[0]
        return {"error": {"code": first.code, "message": first.detail}}
