"""Lectr API keys: generation and the keyed hash that is all Postgres ever holds.

A key is ``lc_key_`` followed by 43 URL-safe characters (256 random bits). It is
stored as HMAC-SHA256 keyed with ``LECTR_KEY_PEPPER``, so a copy of the database
alone cannot be used to test guesses; rotating the pepper invalidates every key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "lc_key_"
_RANDOM_BYTES = 32
DISPLAY_PREFIX_LENGTH = len(KEY_PREFIX) + 5


def generate_key() -> str:
    """A new random key. Show it once; store only :func:`hash_key` of it."""
    return KEY_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def hash_key(raw_key: str, pepper: str) -> str:
    """The keyed hash of ``raw_key`` (64 hex characters), as stored in ``api_keys``."""
    return hmac.new(pepper.encode(), raw_key.encode(), hashlib.sha256).hexdigest()


def verify_key(raw_key: str, stored_hash: str, pepper: str) -> bool:
    """True when ``raw_key`` hashes to ``stored_hash``; constant-time."""
    return hmac.compare_digest(hash_key(raw_key, pepper), stored_hash)


def display_prefix(raw_key: str) -> str:
    """The leading characters shown in listings to tell keys apart (not enough to use)."""
    return raw_key[:DISPLAY_PREFIX_LENGTH]


def looks_like_key(value: str) -> bool:
    """A cheap shape check before hashing untrusted input."""
    return value.startswith(KEY_PREFIX) and 20 <= len(value) <= 200
