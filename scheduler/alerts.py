"""Delivering new anomalies: one email to the org's people, one POST per org webhook.

The anomaly detector calls :func:`deliver` at the end of each run. Pending are the
anomalies detected in the 24 hours up to ``ctx.now()`` that are ``open`` or ``resolved``
(an episode that ended before it could be sent is still worth its one message;
a ``dismissed`` one has been seen already) and that were not yet emailed
(``notified_at`` NULL) or not yet POSTed to one of the org's current webhook URLs (not
in ``webhooks_sent``). The 24-hour limit is deliberate: configuring SMTP or a webhook
later does not flood anyone with a backlog of old anomalies; what could not be
delivered within a day ages out. At most :data:`BATCH` anomalies per run, oldest first.

Recipients are ``organizations.alert_recipients`` plus every member's email,
de-duplicated ignoring case. An org with none gets no email (``notified_at`` stays NULL).

Never twice, never lost silently: ``notified_at`` is set, per anomaly, right after the
SMTP server accepted its message, and a webhook URL is appended to ``webhooks_sent``
right after it answered 2xx. A refused connection, timeout or SMTP error is logged
(the URL's password redacted), counted in ``emails_failed`` / ``webhooks_failed`` and
retried at the next run; it is not a failure of the job. (If the database write after
an accepted send fails, the job fails and that one message may go out again: at least
once, not at most once, in that narrow window.) Without ``LECTR_SMTP_URL`` nothing is
emailed: one warning per run says how many alerts were not, and so does a note.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiosmtplib
import asyncpg

from lectr import mail
from lectr.settings import redact_url
from scheduler import alert_email, webhooks
from scheduler.alert_email import Alert
from scheduler.job import JobContext

log = logging.getLogger(__name__)

BATCH = 500
MAX_AGE = timedelta(hours=24)

_PENDING = "a.detected_at > $1 AND a.detected_at <= $2 AND a.status IN ('open', 'resolved')"
_WANTS_EMAIL = """a.notified_at IS NULL AND (
    cardinality(o.alert_recipients) > 0
    OR EXISTS (SELECT 1 FROM org_members m WHERE m.org_id = a.org_id))"""
_UNPOSTED = "ARRAY(SELECT w FROM unnest(o.alert_webhooks) AS w WHERE w <> ALL (a.webhooks_sent))"

_SELECT = f"""
SELECT a.id, a.org_id, o.name AS org_name, a.kind, a.severity, a.status, a.feature,
       a.provider, a.model, a.window_start, a.window_end, a.observed, a.baseline,
       a.baseline_stddev, a.details,
       CASE WHEN $3 AND {_WANTS_EMAIL} THEN o.alert_recipients || ARRAY(
           SELECT m.email::text FROM org_members m WHERE m.org_id = a.org_id
           ORDER BY m.created_at, m.email) END AS recipients,
       {_UNPOSTED} AS webhooks
FROM anomalies a JOIN organizations o ON o.id = a.org_id
WHERE {_PENDING} AND (($3 AND {_WANTS_EMAIL}) OR cardinality({_UNPOSTED}) > 0)
ORDER BY a.detected_at, a.id
LIMIT $4
"""
_COUNT_UNMAILED = f"""
SELECT count(*) FROM anomalies a JOIN organizations o ON o.id = a.org_id
WHERE {_PENDING} AND {_WANTS_EMAIL}
"""


@dataclass
class DeliveryOutcome:
    """What one :func:`deliver` did: ``wrote`` counts (``emails_sent``, ``emails_failed``,
    ``webhooks_sent``, ``webhooks_failed``) and ``notes`` for the run's summary line."""

    wrote: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def recipients(addresses: Iterable[str]) -> tuple[str, ...]:
    """``addresses`` without blanks and without repeats, ignoring case (first spelling kept)."""
    seen: set[str] = set()
    unique = []
    for address in addresses:
        address = address.strip()
        if address and address.casefold() not in seen:
            seen.add(address.casefold())
            unique.append(address)
    return tuple(unique)


_ALERT_COLUMNS = (
    *("id", "org_id", "org_name", "kind", "severity", "status", "feature", "provider", "model"),
    *("window_start", "window_end", "observed", "baseline", "baseline_stddev"),
)


def _alert(row: Mapping[str, Any], dashboard_url: str) -> Alert:
    details = row["details"]
    if isinstance(details, str):
        details = json.loads(details)
    return Alert(
        **{name: row[name] for name in _ALERT_COLUMNS},
        details=details if isinstance(details, dict) else {},
        url=alert_email.anomaly_url(dashboard_url, row["org_id"], row["id"]),
        recipients=recipients(row["recipients"] or ()),
        webhooks=tuple(row["webhooks"]),
    )


def _alerts(count: int) -> str:
    return f"{count} alert" if count == 1 else f"{count} alerts"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _send_emails(ctx: JobContext, smtp_url: str, alerts: list[Alert]) -> tuple[int, int]:
    """Email each alert over one SMTP session; returns (sent, failed). A message the
    server refuses fails alone; a failed connection or login fails them all."""
    client = mail.smtp_client(smtp_url, ctx.scheduler.smtp_timeout_s)
    try:
        await client.connect()  # STARTTLS and login included
        return await _send_each(ctx, client, alerts)
    except mail.SEND_ERRORS as exc:  # only connect() lets these out
        log.warning(
            "SMTP %s unavailable (%s): %s not emailed, retrying next run",
            redact_url(smtp_url),
            _describe(exc),
            _alerts(len(alerts)),
        )
        return 0, len(alerts)
    finally:
        await _close(client)


async def _send_each(
    ctx: JobContext, client: aiosmtplib.SMTP, alerts: list[Alert]
) -> tuple[int, int]:
    sent = failed = 0
    for done, alert in enumerate(alerts):
        if not client.is_connected:
            log.warning(
                "SMTP server closed the connection: %s not emailed", _alerts(len(alerts) - done)
            )
            return sent, failed + len(alerts) - done
        try:
            msg = alert_email.message(alert, ctx.scheduler.smtp_from, ctx.now())
            await client.send_message(msg, recipients=list(alert.recipients))
        except mail.SEND_ERRORS as exc:
            reason = _describe(exc)
            log.warning("alert %s not emailed (%s), retrying next run", alert.id, reason)
            failed += 1
            continue
        await _mark_emailed(ctx, alert)
        sent += 1
    return sent, failed


async def _close(client: aiosmtplib.SMTP) -> None:
    try:
        if client.is_connected:
            await client.quit()
    except mail.SEND_ERRORS:
        pass
    finally:
        client.close()


async def _mark_emailed(ctx: JobContext, alert: Alert) -> None:
    await ctx.pool.execute(
        "UPDATE anomalies SET notified_at = $2 WHERE id = $1", alert.id, ctx.now()
    )


async def _mark_posted(pool: asyncpg.Pool, alert: Alert, url: str) -> None:
    await pool.execute(
        "UPDATE anomalies SET webhooks_sent = array_append(webhooks_sent, $2)"
        " WHERE id = $1 AND $2 <> ALL (webhooks_sent)",
        alert.id,
        url,
    )


async def _email(ctx: JobContext, alerts: list[Alert], outcome: DeliveryOutcome) -> None:
    smtp_url = ctx.scheduler.smtp_url
    if smtp_url is None:
        now = ctx.now()
        unmailed = await ctx.pool.fetchval(_COUNT_UNMAILED, now - MAX_AGE, now)
        if unmailed:
            note = f"SMTP not configured: {_alerts(unmailed)} not emailed"
            log.warning("%s (set LECTR_SMTP_URL to send them)", note)
            outcome.notes.append(note)
        return
    to_mail = [alert for alert in alerts if alert.recipients]
    if to_mail:
        sent, failed = await _send_emails(ctx, smtp_url, to_mail)
        outcome.wrote["emails_sent"] += sent
        outcome.wrote["emails_failed"] += failed
        if failed:
            outcome.notes.append(f"{_alerts(failed)} not emailed, retrying next run")


async def deliver(ctx: JobContext) -> DeliveryOutcome:
    """Email and POST the pending anomalies (see the module docstring). Raises only when
    the database fails; delivery failures are counted in the outcome and retried."""
    outcome = DeliveryOutcome(
        wrote={"emails_sent": 0, "emails_failed": 0, "webhooks_sent": 0, "webhooks_failed": 0}
    )
    now = ctx.now()
    email_on = ctx.scheduler.smtp_url is not None
    rows = await ctx.pool.fetch(_SELECT, now - MAX_AGE, now, email_on, BATCH)
    alerts = [_alert(row, ctx.settings.dashboard_url) for row in rows]
    await _email(ctx, alerts, outcome)

    sent, failed = await webhooks.post_all(alerts, functools.partial(_mark_posted, ctx.pool))
    outcome.wrote["webhooks_sent"] += sent
    outcome.wrote["webhooks_failed"] += failed
    if failed:
        outcome.notes.append(f"{failed} webhook posts failed, retrying next run")
    if any(outcome.wrote.values()):
        log.info("alerts: %s", " ".join(f"{k}={v}" for k, v in outcome.wrote.items()))
    return outcome
