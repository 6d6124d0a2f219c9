"""Log lines that carry the request id and org, as JSON in production.

Configured from settings.LOGGING: `RequestContextFilter` sits on the console handler so every
line (ours, Django's, libraries') gets `request_id` and `org_id`; `JsonFormatter` renders one
JSON object per line with any `extra=` fields (the per-request line adds route, status and
durations). Both formatters pass the finished line through `redact_secrets`, so a credential
that reaches a log line by any road (a path, a repr, an exception message) is masked.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

from monitoring.context import current_request_context
from tenants.context import current_org

# No format here uses thread names or the multiprocessing process name; not looking them up
# saves part of a microsecond on every record (the request log writes one per request). Set when
# LOGGING is configured (this module is imported by it). The process id stays: gunicorn's own
# log format prints it.
logging.logThreads = False
logging.logMultiprocessing = False

# Attributes every LogRecord has; anything else on a record came from `extra=` or a filter.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}
# One encoder: json.dumps() with options builds a new one per call, and this runs per request.
_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"), ensure_ascii=False)


REDACTED = "[REDACTED]"
# Shapes of Puna's own credentials, kept up to the part that is not secret: an API key's public
# prefix, the `Bearer` keyword, a URL's fixed part before its one-time token.
_SECRET_SHAPES = re.compile(
    r"(?P<api_key>puna_[0-9a-f]{4,16}_)[A-Za-z0-9]{8,}"
    r"|(?P<webhook>whsec_)[A-Za-z0-9_-]{8,}"
    r"|(?P<bearer>\b[Bb]earer\s+)[^\s\"',;]+"
    r"|(?P<invitation>/invitations/)[^/\s\"'?]+"
    r"|(?P<reset>/password-reset/[^/\s\"'?]+/)[^/\s\"'?]+"
)


def _keep_prefix(match: re.Match[str]) -> str:
    return next(group for group in match.groups() if group is not None) + REDACTED


@functools.cache
def _configured_secrets() -> tuple[str, ...]:
    """Secrets from settings that have no recognisable shape (cached; `setting_changed`
    clears it)."""
    mailer = settings.MAILERS.get("default", {}).get("OPTIONS", {})
    values = (settings.METRICS_TOKEN, settings.SECRET_KEY, str(mailer.get("password") or ""))
    # Very short values would mask ordinary words; production refuses them anyway.
    return tuple(value for value in values if len(value) >= 8)


def _forget_configured_secrets(**kwargs: Any) -> None:
    _configured_secrets.cache_clear()


setting_changed.connect(_forget_configured_secrets, dispatch_uid="monitoring.logging.secrets")


def redact_secrets(line: str) -> str:
    """The line with API keys, bearer tokens, webhook secrets, invitation and password-reset
    tokens in URLs, and configured secrets masked."""
    # Plain substring tests first: most lines hold none of these, and `in` is ~20x cheaper
    # than running the pattern over the line.
    if (
        "puna_" in line
        or "earer" in line
        or "whsec_" in line
        or "/invitations/" in line
        or "/password-reset/" in line
    ):
        line = _SECRET_SHAPES.sub(_keep_prefix, line)
    for secret in _configured_secrets():
        if secret in line:
            line = line.replace(secret, REDACTED)
    return line


class RequestContextFilter(logging.Filter):
    """Stamp each record with the current request id and org id ("-" / None outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            ctx = current_request_context()
            record.request_id = ctx.request_id if ctx is not None else "-"
        if not hasattr(record, "org_id"):
            org = current_org()
            record.org_id = org.pk if org is not None else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, org id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        payload: dict[str, object] = {
            "ts": f"{seconds}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        attrs = record.__dict__
        for key in attrs.keys() - _STANDARD_ATTRS:
            if not key.startswith("_"):
                payload[key] = attrs[key]
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        return redact_secrets(_ENCODER.encode(payload))


class PlainFormatter(logging.Formatter):
    """The development format, with secrets masked like the JSON lines."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_secrets(super().format(record))
