"""Getting things out of Puna: report and alert emails, signed webhook requests. No ORM.

Webhook signature (documented for receivers): `Puna-Signature: t=<unix seconds>,v1=<hex>`
where hex = HMAC-SHA256(secret, f"{t}.{raw body}"). Receivers recompute it over the raw bytes,
compare in constant time, and reject timestamps older than a few minutes (replays). Every
attempt is signed afresh, so a retry carries a current timestamp.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage as MimeMessage
from email.message import MIMEPart
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives

from reports.render import CHART_CID

SIGNATURE_HEADER = "Puna-Signature"
WEBHOOK_TIMEOUT_SECONDS = 10
# Only this much of a receiver's answer is kept in the delivery log.
RESPONSE_EXCERPT_BYTES = 500


class ReportEmail(EmailMultiAlternatives):
    """An HTML email whose chart is an inline image the HTML refers to as `cid:...`.

    The image goes in a multipart/related part next to the HTML (so clients show it in place
    rather than as an attachment): alternative → [text, related → [html, png]].
    """

    def __init__(self, *args: Any, inline_png: bytes, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inline_png = inline_png

    def message(self, **kwargs: Any) -> MimeMessage:
        msg: MimeMessage = super().message(**kwargs)
        html = msg.get_body(preferencelist=("html",))
        if html is not None and self.inline_png:
            html.add_related(
                self.inline_png,
                "image",
                "png",
                cid=f"<{CHART_CID}>",
                disposition="inline",
                filename="chart.png",
            )
        return msg


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes | str
    mimetype: str


def send_html_email(
    *,
    subject: str,
    to: list[str],
    text: str,
    html: str,
    inline_png: bytes = b"",
    attachments: tuple[Attachment, ...] = (),
    message_id: str | None = None,
) -> None:
    """Send one email through Django's configured mailer; raises on failure.

    Recipients are Bcc'd so members and outside addresses do not see each other. A stable
    `message_id` lets mail systems (and people) recognise a rare duplicate as the same email.
    """
    headers = {"Message-ID": message_id} if message_id else {}
    email = ReportEmail(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[],
        bcc=to,
        headers=headers,
        inline_png=inline_png,
    )
    email.attach_alternative(html, "text/html")
    for item in attachments:
        part = MIMEPart()
        if isinstance(item.content, str):
            part.set_content(item.content, subtype=item.mimetype.split("/", 1)[1])
        else:
            maintype, subtype = item.mimetype.split("/", 1)
            part.set_content(item.content, maintype=maintype, subtype=subtype)
        part.add_header("Content-Disposition", "attachment", filename=item.filename)
        email.attach(part)
    email.send(using="default")


# --- webhooks ------------------------------------------------------------------------------------


def sign(*, secret: str, timestamp: int, body: bytes) -> str:
    """The `Puna-Signature` header value for `body` sent at `timestamp`."""
    digest = hmac.new(
        secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


def encode_payload(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()


@dataclass(frozen=True)
class PostResult:
    ok: bool
    status_code: int | None
    error: str
    elapsed_ms: int


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect could bounce the signed request to an address we would have refused.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def refused_address(url: str) -> str | None:
    """Why `url` may not be called (a private, loopback or link-local address), or None.

    In development and tests local receivers are allowed; in production an org's URL must
    not reach our own network (cloud metadata, the database, other services).
    """
    if settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        return None
    parts = urlsplit(url)
    try:
        infos = socket.getaddrinfo(parts.hostname or "", parts.port or 443)
    except OSError as exc:
        return f"cannot resolve host: {exc}"
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            return f"{parts.hostname} resolves to a non-public address"
    return None


def post_signed(*, url: str, secret: str, body: bytes, headers: dict[str, str]) -> PostResult:
    """POST `body` to `url` signed with `secret`; a 2xx answer is success, anything else not."""
    started = time.monotonic()
    refused = refused_address(url)
    if refused:
        return PostResult(ok=False, status_code=None, error=refused, elapsed_ms=0)
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked at creation
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Puna-Webhooks/1",
            SIGNATURE_HEADER: sign(secret=secret, timestamp=int(time.time()), body=body),
            **headers,
        },
    )
    try:
        with _opener.open(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            status = int(response.status)
            response.read(RESPONSE_EXCERPT_BYTES)
            error = ""
    except urllib.error.HTTPError as exc:
        status = exc.code
        error = exc.read(RESPONSE_EXCERPT_BYTES).decode("utf-8", "replace") or exc.reason
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return PostResult(
            ok=False,
            status_code=None,
            error=str(getattr(exc, "reason", exc))[:RESPONSE_EXCERPT_BYTES],
            elapsed_ms=int((time.monotonic() - started) * 1000),
        )
    elapsed = int((time.monotonic() - started) * 1000)
    return PostResult(ok=200 <= status < 300, status_code=status, error=error, elapsed_ms=elapsed)
