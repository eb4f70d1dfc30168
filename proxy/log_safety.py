"""Log records of aiohttp and asyncio without the request data they can carry.

aiohttp logs a malformed request's exception, and the exception's text quotes the
offending bytes (an ``Authorization`` line, a piece of a body); asyncio's message for a
failed callback or task quotes its arguments (a request's state, its parsed body). The
filter installed here keeps what helps to debug (the logger, the level, the exception's
class and the frames it went through) and drops the rest: no exception message, no
argument, and nothing from ``aiohttp.access``, whose format carries header values.
"""

from __future__ import annotations

import logging
import re
import traceback

# Every logger aiohttp writes to (aiohttp.log), and asyncio's (uvloop's too).
LOGGERS = (
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.internal",
    "aiohttp.server",
    "aiohttp.web",
    "aiohttp.websocket",
    "asyncio",
)
WITHHELD = "(message withheld: it may quote the request)"
# asyncio's messages quote a callback's or task's repr after its name: cut from there.
_REPR_START = re.compile(r"[(<\n]")


class StripRequestData(logging.Filter):
    """Keeps a record's shape, drops the data: see the module's docstring."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "aiohttp.access":
            return False
        if record.exc_info is not None and record.exc_info[1] is not None:
            record.exc_text = safe_traceback(record.exc_info[1])
            record.exc_info = None
        if record.name == "asyncio":
            text = record.getMessage()
            cut = _REPR_START.search(text)
            record.msg = text[: cut.start()].rstrip() if cut else text
            record.args = None
        return True


def install() -> None:
    """Filter every logger of :data:`LOGGERS` (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, StripRequestData) for f in logger.filters):
            logger.addFilter(StripRequestData())


def safe_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` and of the exceptions that led to it, frames and class
    names only (an exception's message is data: it may quote a header or a body)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    parts: list[str] = []
    for index, link in enumerate(reversed(chain)):
        if index:
            parts.append("\nwhich led to:\n\n")
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(link.__traceback__))
        kind = type(link)
        parts.append(f"{kind.__module__}.{kind.__qualname__} {WITHHELD}\n")
    return "".join(parts).rstrip("\n")
