"""API keys and invitation tokens: 32 random bytes, shown once, stored as their SHA-256.

A token is ``cvgk_`` (team API key) or ``cvgi_`` (candidate invitation)
followed by the URL-safe base64 of 32 bytes from ``secrets``. With that much
entropy a plain SHA-256 is the right storage (no salt or slow hash is needed:
nobody can guess a preimage), and lookups go straight to a unique index. The
prefix lets the service tell a person who sent the wrong kind of token what
they did.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal

TokenKind = Literal["team", "candidate"]
PREFIXES: dict[TokenKind, str] = {"team": "cvgk_", "candidate": "cvgi_"}
_TOKEN_BYTES = 32


def new_token(kind: TokenKind) -> tuple[str, str]:
    """A fresh token of ``kind`` and the SHA-256 (hex) to store in its place."""
    token = PREFIXES[kind] + secrets.token_urlsafe(_TOKEN_BYTES)
    return token, token_sha256(token)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def kind_of(token: str) -> TokenKind | None:
    """Which kind of token this looks like, from its prefix (None: neither)."""
    for kind, prefix in PREFIXES.items():
        if token.startswith(prefix):
            return kind
    return None


def shown_prefix(token: str) -> str:
    """The first characters of a key, enough to recognise it in a list, far too few to use it."""
    return token[:12]
