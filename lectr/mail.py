"""Outgoing email: the SMTP settings every process that sends mail shares, and a client.

The scheduler sends anomaly alerts and the management API sends invites, both through
``LECTR_SMTP_URL`` as ``LECTR_SMTP_FROM``. ``smtp://`` upgrades with STARTTLS when the
server offers it, ``smtps://`` uses TLS from the start; a user and password in the URL
(URL-encoded: ``p%40ss`` is ``p@ss``) log in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiosmtplib

from lectr.settings import EnvReader, SettingsError, positive_float, text

_SMTP_SCHEMES = ("smtp", "smtps")
# What a failed delivery raises: the server refused, could not be reached, timed out,
# or a header could not be built from an address.
SEND_ERRORS = (aiosmtplib.SMTPException, OSError, TimeoutError, ValueError)


def smtp_url(value: str, variable: str) -> str:
    """``smtp://[user:pass@]host[:port]`` (STARTTLS when offered) or ``smtps://`` (TLS)."""
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError as exc:
        raise SettingsError(variable, f"not a valid URL ({exc})") from None
    if parts.scheme not in _SMTP_SCHEMES or not parts.hostname:
        raise SettingsError(variable, "expected smtp://[user:password@]host[:port] or smtps://…")
    return value


@dataclass(frozen=True)
class MailSettings:
    """``url``: the SMTP server (``LECTR_SMTP_URL``; None: no mail is sent). ``sender``:
    the From header (``LECTR_SMTP_FROM``). ``timeout_s``: limit on each SMTP operation,
    connecting included (``LECTR_SMTP_TIMEOUT_S``)."""

    url: str | None = None
    sender: str = "Lectr <lectr@localhost>"
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MailSettings:
        read = EnvReader(environ).read
        d = cls()
        return cls(
            url=read("LECTR_SMTP_URL", d.url, smtp_url),
            sender=read("LECTR_SMTP_FROM", d.sender, text),
            timeout_s=read("LECTR_SMTP_TIMEOUT_S", d.timeout_s, positive_float),
        )


def smtp_client(url: str, timeout_s: float) -> aiosmtplib.SMTP:
    """A client for ``url`` (not yet connected). Ports default to 25 and 465; it logs in
    only when the URL names a user."""
    parts = urlsplit(url)
    implicit_tls = parts.scheme == "smtps"
    username = unquote(parts.username) if parts.username else None
    return aiosmtplib.SMTP(
        hostname=parts.hostname,
        port=parts.port or (465 if implicit_tls else 25),
        username=username,
        password=unquote(parts.password or "") if username else None,
        use_tls=implicit_tls,
        start_tls=False if implicit_tls else None,
        timeout=timeout_s,
    )
