"""`Idempotency-Key` for API POSTs: the first request runs, retries get its stored answer.

A record is inserted (committed) before the work starts, so a concurrent retry sees it and gets
409 instead of running twice; the outcome is saved after the work; a 5xx outcome deletes the
record so the client can retry for real. A record left "in progress" by a request that died
(worker killed, database gone) frees its key after ABANDONED_AFTER. Keys live 24 hours and
belong to one org.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework import exceptions, status

from tenants.models import IdempotencyRecord, Organization

HEADER = "HTTP_IDEMPOTENCY_KEY"
TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255
# No request runs this long (gunicorn's timeout is 30 s): a key still "in progress" after it
# belongs to a request that died with its process or its database connection, and is free again.
ABANDONED_AFTER = timedelta(minutes=2)


class Replay(Exception):
    def __init__(self, record: IdempotencyRecord) -> None:
        super().__init__(record.key)
        self.record = record


class KeyConflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "idempotency_conflict"


class KeyMismatch(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"
    default_detail = "This Idempotency-Key was already used with a different request."


def request_fingerprint(*, method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join([method.encode(), path.encode(), body])).hexdigest()


def idempotency_begin(*, org: Organization, key: str, fingerprint: str) -> IdempotencyRecord:
    """Claim `key` for this request, or raise Replay / KeyConflict / KeyMismatch."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise exceptions.ValidationError(
            {"Idempotency-Key": [f"Use 1 to {MAX_KEY_LENGTH} characters."]}
        )
    now = timezone.now()
    IdempotencyRecord.objects.for_org(org).filter(
        Q(created_at__lt=now - TTL)
        | Q(status_code__isnull=True, created_at__lt=now - ABANDONED_AFTER),
        key=key,
    ).delete()
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(
                organization=org, key=key, request_hash=fingerprint
            )
    except IntegrityError:
        existing = IdempotencyRecord.objects.for_org(org).filter(key=key).first()
        if existing is None:  # finished and deleted (5xx) in between: the caller may retry
            raise KeyConflict("Retry this request.") from None
        if existing.request_hash != fingerprint:
            raise KeyMismatch() from None
        if existing.status_code is None:
            raise KeyConflict("A request with this Idempotency-Key is in progress.") from None
        raise Replay(existing) from None


def idempotency_finish(*, record: IdempotencyRecord, status_code: int, body: Any) -> None:
    """Store the outcome to replay, or forget the key after a server error."""
    if status_code >= 500:
        record.delete()
        return
    record.status_code = status_code
    record.response_body = body
    record.save(update_fields=["status_code", "response_body"])
