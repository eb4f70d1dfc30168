"""A real SMTP server (aiosmtpd) on a free local port that keeps what it accepts.

Fixtures ``smtp`` and ``smtp_with_auth`` (which takes the login ``p@ss/w0rd:1``), loaded
for every test by ``tests/conftest.py``.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.processes import free_port


@dataclasses.dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    authenticated: bool

    @property
    def anomaly_id(self) -> str:
        return str(self.message["X-Lectr-Anomaly"])

    def part(self, subtype: str) -> str:
        body = self.message.get_body((subtype,))
        assert body is not None, f"no text/{subtype} part"
        return str(body.get_content())


class Inbox:
    """An aiosmtpd handler that keeps what it accepts; ``refuse`` > 0 rejects that many."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.refuse = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            self.refuse -= 1
            return "554 5.6.0 refused for the test"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), message, session.authenticated)
        )
        return "250 OK"

    def about(self, *anomaly_ids: uuid.UUID) -> list[Received]:
        wanted = {str(anomaly_id) for anomaly_id in anomaly_ids}
        return [mail for mail in self.received if mail.anomaly_id in wanted]


@dataclasses.dataclass
class SmtpServer:
    inbox: Inbox
    port: int
    logins: list[tuple[str, str]]

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


def _start_smtp(**smtp_options: Any) -> tuple[Controller, SmtpServer]:
    inbox = Inbox()
    server = SmtpServer(inbox, free_port(), [])

    def authenticator(
        _server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        server.logins.append((data.login.decode(), data.password.decode()))
        # handled=False: aiosmtpd answers 535 itself (True would leave the client waiting).
        return AuthResult(success=data.password == b"p@ss/w0rd:1", handled=False)

    if smtp_options.pop("auth", False):
        smtp_options.update(authenticator=authenticator, auth_require_tls=False)
    controller = Controller(
        inbox, hostname="127.0.0.1", port=server.port, server_hostname="smtp.test", **smtp_options
    )
    controller.start()
    return controller, server


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    controller, server = _start_smtp()
    yield server
    controller.stop()


@pytest.fixture
def smtp_with_auth() -> Iterator[SmtpServer]:
    controller, server = _start_smtp(auth=True)
    yield server
    controller.stop()
