"""HMAC signing of the ServiceNow Business Rule webhook (pure stdlib).

The scheme, shared with ``deployments/servicenow/prefect_webhook_business_rule.js``:

* key: the UTF-8 bytes of the shared secret (the script passes ``gs.base64Encode(secret)`` to
  ``CertificateEncryption.generateMac``, which base64-decodes it again);
* message: ``<timestamp> + "." + <raw body>``, the timestamp being integer Unix seconds;
* ``X-SN-Webhook-Signature: v1=<base64 HMAC-SHA256>``; several comma-separated ``v1=`` entries may be
  sent (secret rotation) and one valid entry suffices.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_TOLERANCE_S",
    "DELIVERY_ID_HEADER",
    "SIGNATURE_HEADER",
    "SIGNATURE_VERSION",
    "TIMESTAMP_HEADER",
    "USER_AGENT",
    "BadSignatureError",
    "BadTimestampError",
    "MissingSignatureError",
    "MissingTimestampError",
    "SignatureError",
    "StaleTimestampError",
    "build_headers",
    "canonical_body",
    "parse_signature_header",
    "sign",
    "verify",
]

TIMESTAMP_HEADER = "X-SN-Webhook-Timestamp"
SIGNATURE_HEADER = "X-SN-Webhook-Signature"
DELIVERY_ID_HEADER = "X-SN-Webhook-Id"
SIGNATURE_VERSION = "v1"
CONTENT_TYPE = "application/json"
USER_AGENT = "ServiceNow/1.0"
DEFAULT_TOLERANCE_S = 300

_PREFIX = SIGNATURE_VERSION + "="
_TIMESTAMP_RE = re.compile(r"[0-9]{1,15}")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


class SignatureError(Exception):
    """A webhook request failed authentication. ``reason`` is a stable machine-readable code."""

    reason: str = "signature_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason!r}, message={self.message!r})"


class MissingTimestampError(SignatureError):
    reason = "missing_timestamp"


class BadTimestampError(SignatureError):
    reason = "bad_timestamp"


class StaleTimestampError(SignatureError):
    reason = "stale_timestamp"


class MissingSignatureError(SignatureError):
    reason = "missing_signature"


class BadSignatureError(SignatureError):
    reason = "bad_signature"


def _secrets(secret: str | Sequence[str]) -> list[str]:
    items = [secret] if isinstance(secret, str) else list(secret)
    if not items:
        raise ValueError("no webhook secret configured")
    for item in items:
        if not isinstance(item, str) or not item:
            raise ValueError("webhook secrets must be non-empty strings")
    return items


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _timestamp_str(timestamp: int | str) -> str:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | str):
        raise TypeError("timestamp must be an int or a decimal string")
    text = str(timestamp)
    if not _TIMESTAMP_RE.fullmatch(text):
        raise ValueError("timestamp must be non-negative integer Unix seconds")
    return text


def _mac(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return base64.b64encode(digest.digest()).decode("ascii")


def sign(secret: str, timestamp: int | str, body: bytes | str) -> str:
    """Return the signature header value ``v1=<base64 HMAC-SHA256(secret, "ts.body")>``."""
    if not isinstance(secret, str):
        raise TypeError("sign() takes one secret; use build_headers() to sign with several")
    (key,) = _secrets(secret)
    return _PREFIX + _mac(key, _timestamp_str(timestamp), _as_bytes(body))


def parse_signature_header(value: str) -> list[str]:
    """Return the base64 signatures of the ``v1=`` entries in a signature header (others are ignored)."""
    out = []
    for entry in value.split(","):
        entry = entry.strip()
        if entry.startswith(_PREFIX) and len(entry) > len(_PREFIX):
            out.append(entry[len(_PREFIX) :].strip())
    return out


def verify(
    secret: str | Sequence[str],
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> None:
    """Check a webhook request; return None if valid, else raise a :class:`SignatureError` subclass.

    ``secret`` may be a list (rotation): any secret matching any ``v1=`` entry is accepted. The timestamp
    must lie within ``tolerance_s`` seconds of ``now`` (inclusive) in either direction.
    """
    secrets = _secrets(secret)
    if timestamp_header is None or not timestamp_header.strip():
        raise MissingTimestampError(f"missing {TIMESTAMP_HEADER} header")
    ts_text = timestamp_header.strip()
    if not _TIMESTAMP_RE.fullmatch(ts_text):
        shown = ts_text[:32] + ("..." if len(ts_text) > 32 else "")
        raise BadTimestampError(f"{TIMESTAMP_HEADER} must be integer Unix seconds, got {shown!r}")
    skew = int(ts_text) - (time.time() if now is None else now)
    if abs(skew) > tolerance_s:
        direction = "in the future" if skew > 0 else "old"
        raise StaleTimestampError(
            f"{TIMESTAMP_HEADER} is {abs(skew):.0f}s {direction}, outside the {tolerance_s}s tolerance"
        )
    if signature_header is None or not signature_header.strip():
        raise MissingSignatureError(f"missing {SIGNATURE_HEADER} header")
    candidates = parse_signature_header(signature_header)
    if not candidates:
        raise BadSignatureError(f"{SIGNATURE_HEADER} has no {_PREFIX} entry")
    raw = _as_bytes(body)
    valid = False
    for key in secrets:
        expected = _mac(key, ts_text, raw).encode("ascii")
        for candidate in candidates:
            # compare_digest on bytes: every comparison runs, constant time per comparison
            valid |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    if not valid:
        raise BadSignatureError(f"{SIGNATURE_HEADER} does not match the request body and timestamp")


def build_headers(
    secret: str | Sequence[str],
    body: bytes | str,
    *,
    timestamp: int | str | None = None,
    delivery_id: str | None = None,
) -> dict[str, str]:
    """Return the headers the Business Rule sends for ``body`` (several secrets: one ``v1=`` each)."""
    ts = _timestamp_str(int(time.time()) if timestamp is None else timestamp)
    raw = _as_bytes(body)
    signature = ",".join(_PREFIX + _mac(key, ts, raw) for key in _secrets(secret))
    return {
        "Content-Type": CONTENT_TYPE,
        "User-Agent": USER_AGENT,
        DELIVERY_ID_HEADER: delivery_id or uuid.uuid4().hex,
        TIMESTAMP_HEADER: ts,
        SIGNATURE_HEADER: signature,
    }


def _check_json_value(value: Any, path: str) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: keys must be strings, got {type(key).__name__}")
            _check_json_value(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json_value(item, f"{path}[{i}]")
    elif isinstance(value, float):
        raise TypeError(f"{path}: floats are not supported (JS number formatting differs); use a string")
    elif not (value is None or isinstance(value, str | int)):
        raise TypeError(f"{path}: unsupported type {type(value).__name__}")


def canonical_body(payload: Mapping[str, Any]) -> bytes:
    """Return ``payload`` as UTF-8 JSON, byte-identical to JS ``JSON.stringify(payload)``.

    Compact separators, non-ASCII kept literal, key order preserved; lone surrogates are escaped as
    ``\\udxxx`` like ES2019+ ``JSON.stringify``. Values: strings (and nested dicts/lists of them, ints,
    booleans, None); floats are rejected.
    """
    _check_json_value(payload, "payload")
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    text = _SURROGATE_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text.encode("utf-8")
