"""Secrets out of text that is logged or shown (issue 10, Low 12): credentials in URLs (``user:pass@``), secret
query values (``?key=``, ``api_key``, ``token``, ``signature``, ``password``…), RTMP stream keys (the last
path segment) and ``Api-Key`` / ``Bearer`` credentials.

``redact_url`` is for a URL a message names; ``redact_text`` finds them in any text (an exception, a log line).
The logging configuration runs every log line through ``redact_text``; error messages that quote a URL use
``redact_url``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
RTMP_SCHEMES = ("rtmp", "rtmps")  # their last path segment is a stream key

# A query or fragment parameter whose name ends in one of these holds a secret (key, api_key, stream_key,
# access_token, client_secret, sign, X-Amz-Signature, password, ticket…); its value is hidden.
_SECRET_NAME = r"[\w.\-]*?(?:key|token|secret|sign|signature|sig|auth|password|passwd|pwd|credential|ticket)"
_SECRET_PARAM = re.compile(rf"(?i)((?:^|[?&;#])(?:{_SECRET_NAME})=)[^&;#\s'\"<>]*")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>]+")
_AUTH_HEADER = re.compile(r"(?i)\b(api-key|bearer)(\s+)[A-Za-z0-9._~+/=\-]{8,}")


def redact_url(url: str) -> str:
    """``url`` with its user info, secret parameters and (RTMP) stream key hidden; the rest kept to be useful."""
    try:
        parts = urlsplit(url)
    except ValueError:  # an unparsable URL (a bad IPv6 literal): hide what looks secret in it as text
        return _SECRET_PARAM.sub(rf"\g<1>{MASK}", url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    path = parts.path
    if parts.scheme.lower() in RTMP_SCHEMES:
        head, _, key = path.rpartition("/")
        path = f"{head}/{MASK if key else ''}"
    shown = urlunsplit(parts._replace(netloc=netloc, path=path))
    return _SECRET_PARAM.sub(rf"\g<1>{MASK}", shown)


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (``redact_url``), and secret parameters of relative URLs
    (``/ws/sessions/…/?api_key=``) and ``Api-Key`` / ``Bearer`` credentials hidden."""
    text = _URL.sub(lambda match: redact_url(match.group(0)), text)
    text = _SECRET_PARAM.sub(rf"\g<1>{MASK}", text)
    return _AUTH_HEADER.sub(rf"\g<1>\g<2>{MASK}", text)
