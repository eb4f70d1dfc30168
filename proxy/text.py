"""Text from the client made valid at the edge: every string that reaches an event.

An event is encoded with orjson and stored in Postgres, so its text must be valid
Unicode (no lone surrogates) without NUL. Two sources need it:

- header values (``X-Lectr-Feature``, ``X-Lectr-Task``): aiohttp decodes header bytes as
  UTF-8 with ``surrogateescape``, so a byte that is not UTF-8 arrives as a lone surrogate.
  :func:`from_header` reads such bytes as Latin-1 (HTTP's historical charset for header
  bytes, and what clients that encode headers as Latin-1 meant): ``caf\\xe9`` is
  ``café``. Valid UTF-8 is kept as it is.
- anything else (model names from the body, the decoded path):
  :func:`schema.text.storable` replaces NUL and lone surrogates with U+FFFD.

Both are a flag check and a ``memchr`` for ordinary ASCII text.
"""

from __future__ import annotations

import codecs
import contextlib

from schema.text import storable

__all__ = ["from_header", "storable"]

_LATIN_1 = "lectr-latin-1"


def _latin_1(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: each byte that is not UTF-8 is read as Latin-1."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return error.object[error.start : error.end].decode("latin-1"), error.end


codecs.register_error(_LATIN_1, _latin_1)


def from_header(value: str) -> str:
    """A header value as aiohttp decoded it, with bytes that were not UTF-8 read as
    Latin-1, and NUL replaced."""
    if not value.isascii():
        # A surrogate no byte was escaped to cannot be re-encoded: replaced below.
        with contextlib.suppress(UnicodeEncodeError):
            value = value.encode("utf-8", "surrogateescape").decode("utf-8", _LATIN_1)
    return storable(value)
