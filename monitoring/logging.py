"""Log lines that carry the request id and org, as JSON in production.

Configured from settings.LOGGING: `RequestContextFilter` sits on the console handler so every
line (ours, Django's, libraries') gets `request_id` and `org_id`; `JsonFormatter` renders one
JSON object per line with any `extra=` fields (the per-request line adds route, status and
durations).
"""

from __future__ import annotations

import json
import logging
import time

from monitoring.context import current_request_context
from tenants.context import current_org

# No format here uses thread or process names; not looking them up saves about a microsecond on
# every record, and the request log writes one record per request. Set when LOGGING is
# configured (this module is imported by it), before any request.
logging.logThreads = False
logging.logProcesses = False
logging.logMultiprocessing = False

# Attributes every LogRecord has; anything else on a record came from `extra=` or a filter.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}
# One encoder: json.dumps() with options builds a new one per call, and this runs per request.
_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"), ensure_ascii=False)


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
        return _ENCODER.encode(payload)
