"""The invite email, and sending it through the SMTP server alerts use.

The link carries the token in its fragment (``/invites/accept#token=…``): browsers do
not send a fragment to the server, so the token stays out of access logs and
``Referer`` headers; the dashboard reads it and posts it to ``/api/invites/accept``.
Values from the database (the org's name) are HTML-escaped in the HTML part and
stripped of control characters in headers.
"""

from __future__ import annotations

import html
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from lectr.mail import MailSettings, smtp_client


def accept_url(dashboard_url: str, token: str) -> str:
    return f"{dashboard_url.rstrip('/')}/invites/accept#token={token}"


def _one_line(value: str) -> str:
    return "".join(ch if ch.isprintable() else " " for ch in value)


def message(
    *, to: str, org_name: str, role: str, url: str, expires_at: datetime, sender: str, now: datetime
) -> EmailMessage:
    """Raises ValueError when a header cannot be built (a malformed address)."""
    org = _one_line(org_name)
    expires = f"{expires_at:%Y-%m-%d %H:%M} UTC"
    domain = parseaddr(sender)[1].rpartition("@")[2] or "lectr.invalid"
    msg = EmailMessage()
    msg["Subject"] = f"You are invited to {org} on Lectr"
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=domain)
    msg.set_content(
        f"You are invited to join {org} on Lectr as {role}.\n\n"
        f"Accept the invite (it works once, until {expires}):\n{url}\n\n"
        "If you did not expect this email, ignore it.\n"
    )
    e = html.escape
    msg.add_alternative(
        '<!DOCTYPE html>\n<html><body style="font-family:sans-serif;color:#222">\n'
        f"<p>You are invited to join <strong>{e(org)}</strong> on Lectr as {e(role)}.</p>\n"
        f'<p><a href="{e(url)}">Accept the invite</a> (it works once, until {e(expires)}).'
        "</p>\n"
        '<p style="color:#777;font-size:small">If you did not expect this email, ignore it.'
        "</p>\n</body></html>\n",
        subtype="html",
    )
    return msg


async def send(mail: MailSettings, msg: EmailMessage) -> None:
    """Deliver ``msg``; raises one of :data:`lectr.mail.SEND_ERRORS` when it cannot."""
    assert mail.url is not None
    client = smtp_client(mail.url, mail.timeout_s)
    async with client:  # connects (STARTTLS and login included), quits at the end
        await client.send_message(msg)
