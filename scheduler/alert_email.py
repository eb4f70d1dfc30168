"""What an anomaly alert says, and the email that carries it.

:class:`Alert` is one anomaly as the delivery step sees it (its row, the org's name, who
gets it). The wording lives here once and is shared by the email and the webhook: a
one-line sentence in plain words ("cost for feature chat was 4.4 times its 7-day baseline
between 15:00 and 16:00 UTC on 2026-11-20"), the facts behind it with units, and the
dashboard link. Values read from the database (feature names are user input) are
HTML-escaped in the HTML part and stripped of control characters in headers.

What ``details`` may hold (written by the detector): ``z`` (standard deviations from the
baseline mean, signed) and, for ``model_drift``, ``pairs``: the (model sent for,
model that answered) pairs the baseline never saw, as ``{"model", "response_model",
"requests"}`` objects. ``cost`` is USD per hour, ``latency`` the hour's p95 in ms,
``traffic`` requests per hour, ``error_rate`` and ``model_drift`` shares (0..1).
"""

from __future__ import annotations

import html
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

_METRIC = {
    "cost": "cost",
    "latency": "p95 latency",
    "error_rate": "error rate",
    "traffic": "traffic",
    "model_drift": "model drift",
}
_KIND = {**_METRIC, "latency": "latency"}
# After the observed value, and after the baseline mean, per kind.
_OBSERVED_UNIT = {
    "cost": " per hour",
    "latency": " (p95 of the hour)",
    "error_rate": " of requests failed",
    "traffic": " requests/hour",
    "model_drift": " of requests answered by a model not seen before",
}
_BASELINE_UNIT = {"cost": " per hour", "traffic": " requests/hour"}
_MAX_PAIRS = 10
TIMES = "\N{MULTIPLICATION SIGN}"
SIGMA = "\N{GREEK SMALL LETTER SIGMA}"


@dataclass(frozen=True)
class Alert:
    """One anomaly to deliver. ``recipients``: addresses still to email (empty when it was
    emailed already or nobody is listed); ``webhooks``: URLs it was not yet POSTed to."""

    id: uuid.UUID
    org_id: uuid.UUID
    org_name: str
    kind: str
    severity: str
    status: str
    feature: str | None
    provider: str | None
    model: str | None
    window_start: datetime
    window_end: datetime
    observed: float
    baseline: float | None
    baseline_stddev: float | None
    details: Mapping[str, Any]
    url: str
    recipients: tuple[str, ...] = ()
    webhooks: tuple[str, ...] = ()

    @property
    def z(self) -> float | None:
        """Standard deviations from the baseline mean (signed), from ``details`` or, when
        the detector did not record it, from observed, mean and standard deviation."""
        z = self.details.get("z")
        if isinstance(z, int | float) and math.isfinite(z):
            return float(z)
        if self.baseline is not None and self.baseline_stddev:
            return (self.observed - self.baseline) / self.baseline_stddev
        return None


def anomaly_url(dashboard_url: str, org_id: uuid.UUID, anomaly_id: uuid.UUID) -> str:
    """The dashboard page of one anomaly."""
    return f"{dashboard_url.rstrip('/')}/orgs/{org_id}/anomalies/{anomaly_id}"


def _one_line(value: str) -> str:
    """``value`` without line breaks or other control characters (for headers and chat)."""
    return "".join(ch if ch.isprintable() else " " for ch in value)


def _scope(alert: Alert, preposition: str) -> str:
    if alert.feature is None:
        return "across all features"
    return f"{preposition} feature {_one_line(alert.feature)}"


def subject(alert: Alert) -> str:
    """``[Lectr] acme: cost anomaly on feature chat``."""
    return f"[Lectr] {_one_line(alert.org_name)}: {_KIND[alert.kind]} anomaly {_scope(alert, 'on')}"


def value(kind: str, number: float) -> str:
    """``number`` in the kind's unit, short: ``$1.2345``, ``1,234 ms``, ``12.5%``, ``1,234``."""
    if kind == "cost":
        return f"${number:,.4f}"
    if kind == "latency":
        return f"{number:,.0f} ms"
    if kind in ("error_rate", "model_drift"):
        return f"{number * 100:.1f}%"
    return f"{number:,.0f}"


def _window(start: datetime, end: datetime) -> str:
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end - start <= timedelta(hours=24):
        return f"between {start:%H:%M} and {end:%H:%M} UTC on {start:%Y-%m-%d}"
    return f"between {start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC"


def sentence(alert: Alert) -> str:
    """The alert in plain words, capitalised, without a final full stop."""
    what = f"{_METRIC[alert.kind]} {_scope(alert, 'for')}"
    when = _window(alert.window_start, alert.window_end)
    observed = value(alert.kind, alert.observed)
    if alert.baseline is None:
        text = f"{what} was {observed} {when}, with no 7-day baseline to compare"
    elif alert.baseline == 0:
        text = f"{what} was {observed} {when}, while its 7-day baseline is 0"
    else:
        ratio = alert.observed / alert.baseline
        times = f"{ratio:.1f}{TIMES}" if ratio >= 0.1 else f"{ratio:.2f}{TIMES}"
        text = f"{what} was {times} its 7-day baseline {when}"
    return text[0].upper() + text[1:]


def _pairs(details: Mapping[str, Any]) -> list[str]:
    """``gpt-4o answered by o1-2024-12-17 (12 requests)``, one per new pair."""
    pairs = []
    for item in details.get("pairs") or ():
        if isinstance(item, Mapping) and item.get("model") and item.get("response_model"):
            count = item.get("requests")
            times = f" ({count} requests)" if isinstance(count, int) else ""
            pairs.append(f"{item['model']} answered by {item['response_model']}{times}")
    return pairs


def facts(alert: Alert) -> list[tuple[str, str]]:
    """The evidence under the sentence, as (label, text) rows with units."""
    kind = alert.kind
    rows = [("Observed", value(kind, alert.observed) + _OBSERVED_UNIT[kind])]
    if alert.baseline is not None:
        sd = alert.baseline_stddev
        spread = "" if sd is None else f", {SIGMA} {value(kind, sd)}"
        mean = value(kind, alert.baseline) + _BASELINE_UNIT.get(kind, "")
        rows.append(("7-day baseline", f"{mean} (mean of the hourly values{spread})"))
    if (z := alert.z) is not None:
        side = "above" if z >= 0 else "below"
        rows.append(("Deviation", f"{abs(z):.1f}{SIGMA} {side} the baseline"))
    rows.append(("Severity", alert.severity))
    if alert.provider or alert.model:
        rows.append(("Provider / model", " / ".join(filter(None, (alert.provider, alert.model)))))
    if pairs := _pairs(alert.details):
        shown = "; ".join(pairs[:_MAX_PAIRS]) + (" …" if len(pairs) > _MAX_PAIRS else "")
        rows.append(("New models answering", shown))
    if alert.status == "resolved":
        rows.append(("Status", "resolved since (back within range)"))
    return rows


def _footer(alert: Alert) -> str:
    return (
        f"You receive this because you are a member of {alert.org_name} "
        "or on its alert list in Lectr."
    )


def _text_body(alert: Alert) -> str:
    width = max(len(label) for label, _ in facts(alert))
    lines = [f"{sentence(alert)}.", ""]
    lines += [f"{label + ':':<{width + 1}} {text}" for label, text in facts(alert)]
    lines += ["", f"Open it in Lectr: {alert.url}", "", "-- ", _footer(alert)]
    return "\n".join(lines) + "\n"


def _html_body(alert: Alert) -> str:
    e = html.escape
    rows = "".join(
        f'<tr><th align="left" style="padding:2px 12px 2px 0">{e(label)}</th>'
        f"<td>{e(text)}</td></tr>"
        for label, text in facts(alert)
    )
    return (
        '<!DOCTYPE html>\n<html><body style="font-family:sans-serif;color:#222">\n'
        f"<p><strong>{e(sentence(alert))}.</strong></p>\n"
        f"<table>{rows}</table>\n"
        f'<p><a href="{e(alert.url)}">Open this anomaly in Lectr</a><br>{e(alert.url)}</p>\n'
        f'<p style="color:#777;font-size:small">{e(_footer(alert))}</p>\n'
        "</body></html>\n"
    )


def message(alert: Alert, sender: str, now: datetime) -> EmailMessage:
    """The email for ``alert`` to all its recipients: a plain-text and an HTML part. Its
    Message-ID is derived from the anomaly id, so a mail client can tell a repeat apart.
    Raises ValueError when a header cannot be built (a malformed address)."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "lectr.invalid"
    msg = EmailMessage()
    msg["Subject"] = subject(alert)
    msg["From"] = sender
    msg["To"] = ", ".join(alert.recipients)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<anomaly-{alert.id}@{domain}>"
    msg["X-Lectr-Anomaly"] = str(alert.id)
    msg.set_content(_text_body(alert))
    msg.add_alternative(_html_body(alert), subtype="html")
    return msg
