"""Text from the client made valid at the edge: every string that reaches an event.

An event is encoded with orjson and stored in Postgres, so its text must be valid
Unicode (no lone surrogates) without NUL. Two sources need it:

- header values (``X-Lectr-Feature``, ``X-Lectr-Task``): aiohttp decodes header bytes as
  UTF-8 with ``surrogateescape``, so a byte that is not UTF-8 arrives as a lone surrogate.
  :func:`from_header` reads such bytes as Latin-1 (HTTP's historical charset for header
  bytes, and what clients that encode headers as Latin-1 meant): ``caf\\xe9`` is
  ``café``. Valid UTF-8 is kept as it is.
- anything else (model names from the body, the decoded path): :func:`storable` replaces
  NUL and lone surrogates with U+FFFD.

Both are a flag check and a ``memchr`` for ordinary ASCII text.
"""

from __future__ import annotations

import codecs
import re

REPLACEMENT = "\ufffd"
_SURROGATES = re.compile("[\ud800-\udfff]")
_LATIN_1 = "lectr-latin-1"


def _latin_1(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: each byte that is not UTF-8 is read as Latin-1."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return error.object[error.start : error.end].decode("latin-1"), error.end


codecs.register_error(_LATIN_1, _latin_1)


def storable(value: str) -> str:
    """``value`` with NUL and lone surrogates replaced by U+FFFD."""
    if not value.isascii():
        value = _SURROGATES.sub(REPLACEMENT, value)
    return value.replace("\x00", REPLACEMENT) if "\x00" in value else value


def from_header(value: str) -> str:
    """A header value as aiohttp decoded it, with bytes that were not UTF-8 read as
    Latin-1, and NUL replaced."""
    if not value.isascii():
        try:
            value = value.encode("utf-8", "surrogateescape").decode("utf-8", _LATIN_1)
        except UnicodeEncodeError:  # a surrogate no byte was escaped to
            value = _SURROGATES.sub(REPLACEMENT, value)
    return value.replace("\x00", REPLACEMENT) if "\x00" in value else value
