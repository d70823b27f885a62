"""Toggl's webhook signature: `X-Webhook-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the raw
request body keyed with the subscription's secret (Toggl's "validating received events")."""

from __future__ import annotations

import hashlib
import hmac

#: The header Toggl signs every delivery with.
SIGNATURE_HEADER = "X-Webhook-Signature-256"
_PREFIX = "sha256="


def signature(secret: str, body: bytes) -> str:
    """The header value Toggl sends for `body` under `secret`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"{_PREFIX}{digest}"


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Whether `header` is the signature of exactly these bytes (compared in constant time)."""
    if not header:
        return False
    return hmac.compare_digest(signature(secret, body).encode(), header.strip().encode())


__all__ = ["SIGNATURE_HEADER", "signature", "verify"]
