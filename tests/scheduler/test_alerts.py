# ruff: noqa: RUF001  (the emails say the multiplication and sigma signs; so do the asserts)
"""Alert delivery: emails to a real local SMTP server (aiosmtpd) and POSTs to a local
webhook receiver, for anomaly rows inserted directly.

Each test runs at its own "now", days apart and years after the other scheduler tests'
clock, and deletes its orgs afterwards, so no test sees another's pending anomalies.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from lectr.settings import Settings
from scheduler import alerts
from scheduler.alert_email import Alert, facts, sentence
from tests.scheduler.conftest import job_context
from tests.support.forwarder import TcpForwarder
from tests.support.processes import free_port
from tests.support.smtp import SmtpServer

BASE = datetime(2031, 3, 2, 16, 7, 30, tzinfo=UTC)  # the last full hour: 15:00-16:00
DASHBOARD = "https://lectr.example.com"
SETTINGS = Settings(dashboard_url=DASHBOARD + "/")


def at(day: int) -> datetime:
    """This test's "now": ``day`` days after :data:`BASE`."""
    return BASE + timedelta(days=day)


# -- a webhook receiver (the SMTP server is tests.support.smtp) -------------------------


class Hooks:
    """A webhook receiver: ``/<name>`` answers ``status[name]`` (200 unless set)."""

    def __init__(self) -> None:
        self.posts: dict[str, list[dict[str, Any]]] = {}
        self.status: dict[str, int] = {}
        self.base = ""

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.posts.setdefault(name, []).append(await request.json())
        return web.Response(status=self.status.get(name, 200))


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    receiver = Hooks()
    app = web.Application()
    app.router.add_post("/{name}", receiver.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver.base = f"http://127.0.0.1:{port}"
    yield receiver
    await runner.cleanup()


# -- orgs and anomalies ------------------------------------------------------------------

MakeOrg = Callable[..., Awaitable[tuple[uuid.UUID, str]]]


@pytest.fixture
async def make_org(pool: asyncpg.Pool) -> AsyncIterator[MakeOrg]:
    """``await make_org(recipients=[...], members=[...], webhooks=[...])`` -> (id, name);
    the orgs (and with them their anomalies) are deleted after the test."""
    created: list[uuid.UUID] = []

    async def make(
        *, recipients: list[str] = (), members: list[str] = (), webhooks: list[str] = ()
    ) -> tuple[uuid.UUID, str]:
        name = f"acme-{uuid.uuid4().hex[:8]}"
        org_id = await pool.fetchval(
            "INSERT INTO organizations (name, alert_recipients, alert_webhooks)"
            " VALUES ($1, $2, $3) RETURNING id",
            name,
            list(recipients),
            list(webhooks),
        )
        created.append(org_id)
        for address in members:
            await pool.execute(
                "INSERT INTO org_members (org_id, email) VALUES ($1, $2)", org_id, address
            )
        return org_id, name

    yield make
    await pool.execute("DELETE FROM organizations WHERE id = ANY($1)", created)


async def add_anomaly(
    pool: asyncpg.Pool,
    org_id: uuid.UUID,
    now: datetime,
    *,
    detected_ago: timedelta = timedelta(minutes=5),
    feature: str | None = "chat",
    **columns: Any,
) -> uuid.UUID:
    """A cost anomaly 4.4x its baseline in the hour before ``now``, detected
    ``detected_ago`` before ``now``; ``columns`` replace any column."""
    window_end = now.replace(minute=0, second=0, microsecond=0)
    values: dict[str, Any] = {
        "org_id": org_id,
        "kind": "cost",
        "severity": "critical",
        "status": "open",
        "feature": feature,
        "window_start": window_end - timedelta(hours=1),
        "window_end": window_end,
        "observed": 4.4,
        "baseline": 1.0,
        "baseline_stddev": 0.7,
        "threshold": 2.4,
        "details": {"z": 4.857},
        "detected_at": now - detected_ago,
        **columns,
    }
    values["details"] = json.dumps(values["details"])
    names = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    return await pool.fetchval(
        f"INSERT INTO anomalies ({names}) VALUES ({params}) RETURNING id", *values.values()
    )


async def notified_at(pool: asyncpg.Pool, anomaly_id: uuid.UUID) -> datetime | None:
    return await pool.fetchval("SELECT notified_at FROM anomalies WHERE id = $1", anomaly_id)


def link(org_id: uuid.UUID, anomaly_id: uuid.UUID) -> str:
    return f"{DASHBOARD}/orgs/{org_id}/anomalies/{anomaly_id}"


# -- email ---------------------------------------------------------------------------------


async def test_email_reaches_org_recipients_and_members_once(
    pool: asyncpg.Pool, smtp: SmtpServer, make_org: MakeOrg
) -> None:
    now = at(0)
    org_id, name = await make_org(
        recipients=["ops@example.com", "Alice@Example.com"],
        members=["alice@example.com", "bob@example.com", "OPS@example.com"],
    )
    anomaly_id = await add_anomaly(pool, org_id, now)
    lonely_org, _ = await make_org()  # nobody to tell
    unheard = await add_anomaly(pool, lonely_org, now)
    ctx = job_context(
        pool, now, settings=SETTINGS, smtp_url=smtp.url, smtp_from="Lectr <a@lectr.test>"
    )

    outcome = await alerts.deliver(ctx)

    assert outcome.wrote["emails_sent"] == 1
    assert outcome.wrote["emails_failed"] == 0
    [mail] = smtp.inbox.about(anomaly_id)
    assert sorted(mail.rcpt_tos) == ["Alice@Example.com", "bob@example.com", "ops@example.com"]
    assert mail.mail_from == "a@lectr.test"
    assert mail.message["Subject"] == f"[Lectr] {name}: cost anomaly on feature chat"
    text, page = mail.part("plain"), mail.part("html")
    expected = "Cost for feature chat was 4.4× its 7-day baseline between 15:00 and 16:00 UTC"
    for part in (text, page):
        assert expected in part
        assert "4.9σ above the baseline" in part
        assert "$4.4000 per hour" in part
        assert "$1.0000 per hour" in part
        assert "critical" in part
        assert link(org_id, anomaly_id) in part
    assert f'href="{link(org_id, anomaly_id)}"' in page
    assert await notified_at(pool, anomaly_id) == now
    assert await notified_at(pool, unheard) is None
    assert smtp.inbox.about(unheard) == []

    again = await alerts.deliver(ctx)

    assert again.wrote["emails_sent"] == 0
    assert len(smtp.inbox.about(anomaly_id)) == 1


async def test_smtp_down_is_retried_next_run_and_sent_once(
    pool: asyncpg.Pool, smtp: SmtpServer, make_org: MakeOrg
) -> None:
    now = at(1)
    org_id, _ = await make_org(members=["dev@example.com"])
    anomaly_id = await add_anomaly(pool, org_id, now)
    with TcpForwarder("127.0.0.1", smtp.port) as forwarder:
        ctx = job_context(
            pool, now, settings=SETTINGS, smtp_url=forwarder.url_for(smtp.url), smtp_timeout_s=5
        )
        forwarder.cut()

        down = await alerts.deliver(ctx)

        assert down.wrote["emails_sent"] == 0
        assert down.wrote["emails_failed"] == 1
        assert any("retrying next run" in note for note in down.notes)
        assert await notified_at(pool, anomaly_id) is None
        forwarder.restore()

        restored = await alerts.deliver(ctx)
        after = await alerts.deliver(ctx)

    assert restored.wrote["emails_sent"] == 1
    assert after.wrote["emails_sent"] == after.wrote["emails_failed"] == 0
    assert len(smtp.inbox.about(anomaly_id)) == 1
    assert await notified_at(pool, anomaly_id) == now


async def test_nothing_listening_counts_failures_without_raising(
    pool: asyncpg.Pool, make_org: MakeOrg
) -> None:
    now = at(2)
    org_id, _ = await make_org(members=["dev@example.com"])
    first = await add_anomaly(pool, org_id, now)
    second = await add_anomaly(pool, org_id, now, kind="traffic", observed=900.0)
    ctx = job_context(pool, now, smtp_url=f"smtp://127.0.0.1:{free_port()}", smtp_timeout_s=5)

    outcome = await alerts.deliver(ctx)

    assert outcome.wrote["emails_failed"] == 2
    assert await notified_at(pool, first) is None
    assert await notified_at(pool, second) is None


async def test_a_refused_message_is_retried_and_the_others_still_go(
    pool: asyncpg.Pool, smtp: SmtpServer, make_org: MakeOrg
) -> None:
    now = at(3)
    org_id, _ = await make_org(members=["dev@example.com"])
    refused = await add_anomaly(pool, org_id, now, detected_ago=timedelta(minutes=10))
    accepted = await add_anomaly(pool, org_id, now, kind="latency", observed=2400.0)
    smtp.inbox.refuse = 1  # the older one goes first
    ctx = job_context(pool, now, settings=SETTINGS, smtp_url=smtp.url)

    first = await alerts.deliver(ctx)

    assert (first.wrote["emails_sent"], first.wrote["emails_failed"]) == (1, 1)
    assert await notified_at(pool, refused) is None
    assert await notified_at(pool, accepted) == now

    second = await alerts.deliver(ctx)

    assert (second.wrote["emails_sent"], second.wrote["emails_failed"]) == (1, 0)
    assert len(smtp.inbox.about(refused)) == len(smtp.inbox.about(accepted)) == 1


async def test_smtp_login_uses_the_urls_decoded_credentials_and_never_logs_the_password(
    pool: asyncpg.Pool,
    smtp_with_auth: SmtpServer,
    make_org: MakeOrg,
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = at(4)
    org_id, _ = await make_org(members=["dev@example.com"])
    anomaly_id = await add_anomaly(pool, org_id, now)
    host = f"127.0.0.1:{smtp_with_auth.port}"
    wrong = job_context(pool, now, smtp_url=f"smtp://alerts%40acme:n0t-1t@{host}")
    right = job_context(pool, now, smtp_url=f"smtp://alerts%40acme:p%40ss%2Fw0rd%3A1@{host}")

    with caplog.at_level(logging.WARNING, logger="scheduler.alerts"):
        refused = await alerts.deliver(wrong)

    assert refused.wrote["emails_failed"] == 1
    assert await notified_at(pool, anomaly_id) is None
    assert "alerts%40acme:***@" in caplog.text
    assert "n0t-1t" not in caplog.text

    accepted = await alerts.deliver(right)

    assert accepted.wrote["emails_sent"] == 1
    # aiosmtplib tries each mechanism the server offers before it gives up.
    *refused_logins, last_login = smtp_with_auth.logins
    assert set(refused_logins) == {("alerts@acme", "n0t-1t")}
    assert last_login == ("alerts@acme", "p@ss/w0rd:1")
    [mail] = smtp_with_auth.inbox.about(anomaly_id)
    assert mail.authenticated


async def test_without_smtp_alerts_are_kept_and_said_once(
    pool: asyncpg.Pool, hooks: Hooks, make_org: MakeOrg, caplog: pytest.LogCaptureFixture
) -> None:
    now = at(5)
    org_id, _ = await make_org(recipients=["ops@example.com"], webhooks=[hooks.url("team")])
    anomalies = [await add_anomaly(pool, org_id, now, kind=kind) for kind in ("cost", "error_rate")]
    ctx = job_context(pool, now, settings=SETTINGS, smtp_url=None)

    with caplog.at_level(logging.WARNING, logger="scheduler.alerts"):
        outcome = await alerts.deliver(ctx)

    assert outcome.notes == ["SMTP not configured: 2 alerts not emailed"]
    [warning] = [r for r in caplog.records if r.name == "scheduler.alerts"]
    assert "SMTP not configured" in warning.getMessage()
    assert "2 alerts" in warning.getMessage()
    assert [await notified_at(pool, anomaly_id) for anomaly_id in anomalies] == [None, None]
    # Webhooks do not depend on SMTP.
    assert outcome.wrote["webhooks_sent"] == 2
    assert len(hooks.posts["team"]) == 2


async def test_only_recent_open_or_resolved_anomalies_are_sent(
    pool: asyncpg.Pool, smtp: SmtpServer, hooks: Hooks, make_org: MakeOrg
) -> None:
    now = at(6)
    org_id, _ = await make_org(members=["dev@example.com"], webhooks=[hooks.url("team")])
    stale = await add_anomaly(pool, org_id, now, detected_ago=timedelta(hours=25))
    dismissed = await add_anomaly(pool, org_id, now, kind="traffic", status="dismissed")
    recent = await add_anomaly(pool, org_id, now, kind="latency", detected_ago=timedelta(hours=23))
    resolved = await add_anomaly(
        pool, org_id, now, kind="error_rate", status="resolved", resolved_at=now
    )
    ctx = job_context(pool, now, settings=SETTINGS, smtp_url=smtp.url)

    outcome = await alerts.deliver(ctx)

    assert outcome.wrote["emails_sent"] == 2
    assert [len(smtp.inbox.about(a)) for a in (stale, dismissed, recent, resolved)] == [0, 0, 1, 1]
    [mail] = smtp.inbox.about(resolved)
    assert "resolved since" in mail.part("plain")
    posted = {post["anomaly"]["id"] for post in hooks.posts["team"]}
    assert posted == {str(recent), str(resolved)}
    assert await notified_at(pool, stale) is None


async def test_html_part_escapes_what_users_named(
    pool: asyncpg.Pool, smtp: SmtpServer, make_org: MakeOrg
) -> None:
    now = at(7)
    org_id, name = await make_org(members=["dev@example.com"])
    feature = "<script>alert('x')</script>"
    anomaly_id = await add_anomaly(pool, org_id, now, feature=feature)
    ctx = job_context(pool, now, settings=SETTINGS, smtp_url=smtp.url)

    await alerts.deliver(ctx)

    [mail] = smtp.inbox.about(anomaly_id)
    page = mail.part("html")
    assert "<script>" not in page
    assert "for feature &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; was 4.4×" in page
    assert f"for feature {feature} was 4.4×" in mail.part("plain")
    # Python folds this long subject before its first word; unfolded, it starts after ": ".
    assert mail.message["Subject"].strip() == f"[Lectr] {name}: cost anomaly on feature {feature}"


# -- webhooks -------------------------------------------------------------------------------


async def test_webhook_gets_one_post_and_a_failing_one_is_retried(
    pool: asyncpg.Pool, hooks: Hooks, make_org: MakeOrg
) -> None:
    now = at(8)
    org_id, name = await make_org(webhooks=[hooks.url("slack"), hooks.url("pager")])
    anomaly_id = await add_anomaly(pool, org_id, now, feature=None)
    hooks.status["pager"] = 500
    ctx = job_context(pool, now, settings=SETTINGS)

    first = await alerts.deliver(ctx)

    assert (first.wrote["webhooks_sent"], first.wrote["webhooks_failed"]) == (1, 1)
    [post] = hooks.posts["slack"]
    assert post["text"].startswith(
        f"[Lectr] {name}: Cost across all features was 4.4× its 7-day baseline"
        " between 15:00 and 16:00 UTC"
    )
    assert post["text"].endswith(link(org_id, anomaly_id))
    assert post["anomaly"]["id"] == str(anomaly_id)
    assert post["anomaly"]["org_id"] == str(org_id)
    assert post["anomaly"]["kind"] == "cost"
    assert post["anomaly"]["feature"] is None
    assert post["anomaly"]["z"] == pytest.approx(4.857)
    assert post["anomaly"]["url"] == link(org_id, anomaly_id)
    assert len(hooks.posts["pager"]) == 1
    hooks.status["pager"] = 204

    second = await alerts.deliver(ctx)
    third = await alerts.deliver(ctx)

    assert (second.wrote["webhooks_sent"], second.wrote["webhooks_failed"]) == (1, 0)
    assert third.wrote["webhooks_sent"] == third.wrote["webhooks_failed"] == 0
    assert (len(hooks.posts["slack"]), len(hooks.posts["pager"])) == (1, 2)


# -- wording ---------------------------------------------------------------------------------


def _alert(kind: str, observed: float, baseline: float, **changes: Any) -> Alert:
    fields: dict[str, Any] = {
        "id": uuid.UUID(int=2),
        "org_id": uuid.UUID(int=1),
        "org_name": "acme",
        "kind": kind,
        "severity": "warning",
        "status": "open",
        "feature": None,
        "provider": None,
        "model": None,
        "window_start": datetime(2031, 1, 1, 9, tzinfo=UTC),
        "window_end": datetime(2031, 1, 1, 10, tzinfo=UTC),
        "observed": observed,
        "baseline": baseline,
        "baseline_stddev": 1.0,
        "details": {},
        "url": "https://lectr.example.com/orgs/1/anomalies/2",
    }
    return Alert(**{**fields, **changes})


@pytest.mark.parametrize(
    ("alert", "said", "shown"),
    [
        (
            _alert("traffic", 24.0, 120.0, details={"z": -3.04}),
            "Traffic across all features was 0.2× its 7-day baseline between 09:00 and 10:00",
            ["Observed: 24 requests/hour", "3.0σ below the baseline"],
        ),
        (
            _alert("latency", 4200.0, 1400.0, feature="search"),
            "P95 latency for feature search was 3.0× its 7-day baseline",
            ["4,200 ms (p95 of the hour)", "1,400 ms (mean of the hourly values, σ 1 ms)"],
        ),
        (
            _alert("error_rate", 0.125, 0.01, baseline_stddev=0.02),
            "Error rate across all features was 12.5× its 7-day baseline",
            ["12.5% of requests failed", "1.0% (mean of the hourly values, σ 2.0%)"],
        ),
        (
            _alert(
                "model_drift",
                0.35,
                0.0,
                details={
                    "z": 17.5,
                    "pairs": [
                        {
                            "provider": "openai",
                            "model": "gpt-4o",
                            "response_model": "o1",
                            "requests": 7,
                        }
                    ],
                },
            ),
            "Model drift across all features was 35.0% between 09:00 and 10:00 UTC on"
            " 2031-01-01, while its 7-day baseline is 0",
            [
                "35.0% of requests answered by a model not seen before",
                "gpt-4o answered by o1 (7 requests)",
            ],
        ),
    ],
    ids=["traffic-drop", "latency", "error-rate", "drift-from-zero"],
)
def test_each_kind_is_said_in_plain_words_with_units(
    alert: Alert, said: str, shown: list[str]
) -> None:
    assert sentence(alert).startswith(said)
    evidence = "\n".join(f"{label}: {text}" for label, text in facts(alert))
    for text in shown:
        assert text in evidence
