"""API keys and invitation tokens: 32 random bytes, shown once, stored as their SHA-256.

A token is ``cvgk_`` (team API key) or ``cvgi_`` (candidate invitation)
followed by the URL-safe base64 of 32 bytes from ``secrets``. With that much
entropy a plain SHA-256 is the right storage (no salt or slow hash is needed:
nobody can guess a preimage), and lookups go straight to a unique index. The
prefix lets the service tell a person who sent the wrong kind of token what
they did.

Invitation tokens are derived instead (``derive_token``): HMAC-SHA256 of the
server's secret key and a random salt kept with the invitation, which is as
unguessable and lets the team's pages show the candidate's link again. The
database still holds only the token's SHA-256 and the salt: without the key
neither gives the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
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


def derive_token(server_key: bytes, salt: str) -> str:
    """The invitation token for ``salt``: the same every time under the same server key."""
    digest = hmac.new(server_key, f"cvgrade invitation {salt}".encode(), hashlib.sha256).digest()
    return PREFIXES["candidate"] + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def new_invitation_token(server_key: bytes) -> tuple[str, str, str]:
    """A fresh invitation token, the SHA-256 to store in its place, and the salt it was derived from."""
    salt = secrets.token_hex(16)
    token = derive_token(server_key, salt)
    return token, token_sha256(token), salt


def rederive_token(server_key: bytes, salt: str, stored_sha256: str) -> str | None:
    """The token derived from ``salt`` if it is the one stored; None when the server key has changed since."""
    token = derive_token(server_key, salt)
    return token if hmac.compare_digest(token_sha256(token), stored_sha256) else None
