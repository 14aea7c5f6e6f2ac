"""The one place secrets are scrubbed: every URL, header, error text and setting that is
printed, logged or stored passes through :func:`redact` (or :func:`redact_url`).

What counts as a secret:

* values the caller knows are secret (the API key in use);
* ``sk-`` style keys, bearer tokens and ``api_key=...`` pairs anywhere in a text;
* the userinfo of a URL, with or without a password (``http://KEY@host/v1``,
  ``postgresql://user:pass@host/db``);
* the query string of a URL (``?key=...``), since providers put keys there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

REDACTED = "[redacted]"
# Known secret values shorter than this are not scrubbed: a placeholder like "unused" is not a
# secret, and replacing short strings would mangle ordinary text.
MIN_SECRET_CHARS = 8

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s\"'<>]+")
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"sk-[A-Za-z0-9_\-]{8,}"), REDACTED),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-.=~+/]{8,}"), r"\1" + REDACTED),
    (re.compile(r"(?i)(api[_-]?key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}&]{6,}"), r"\1" + REDACTED),
)


def redact_url(url: str) -> str:
    """``url`` without its userinfo and with its query string replaced; unparsable text is
    returned with the same parts scrubbed by pattern."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"(://)[^/@\s]*@", r"\1" + REDACTED + "@", url.split("?", 1)[0])
    netloc = parts.netloc
    if "@" in netloc:
        netloc = REDACTED + "@" + netloc.rsplit("@", 1)[1]
    query = REDACTED if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _redact_url_match(match: re.Match[str]) -> str:
    url = match.group(0)
    # Already scrubbed: "[redacted]@host" would parse as a broken IPv6 host and lose its query marker.
    return url if REDACTED in url else redact_url(url)


def redact(text: str | None, secrets: Iterable[str] = ()) -> str | None:
    """``text`` with known secret values, credential-shaped strings and the secret parts of URLs
    replaced by ``[redacted]``."""
    if text is None:
        return None
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_CHARS:
            text = text.replace(secret, REDACTED)
    text = _URL.sub(_redact_url_match, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
