"""The scheduler's own settings, read once at start-up.

The settings every process shares (database, dashboard URL, ...) are in
:class:`lectr.settings.Settings`; these are the scheduler's: job intervals, its port,
anomaly detection, email and retention.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lectr.mail import MailSettings
from lectr.settings import EnvReader, SettingsError, positive_float, positive_int

JOB_NAMES = ("aggregate", "anomalies", "recommendations", "partitions")


def _port(value: str, variable: str) -> int:
    port = positive_int(value, variable)
    if port > 65535:
        raise SettingsError(variable, f"port must be 1-65535, got {port}")
    return port


def _sigma(value: str, variable: str) -> float:
    sigma = positive_float(value, variable)
    if sigma < 1:
        raise SettingsError(variable, f"must be at least 1, got {value!r}")
    return sigma


@dataclass(frozen=True)
class SchedulerSettings:
    """How often each job runs and how the jobs behave.

    ``intervals_s``: seconds between two ticks of each job (``LECTR_SCHEDULER_<JOB>_
    INTERVAL_S``). ``job_timeout_s``: a run still going after this is cancelled and
    counted as failed. ``shutdown_timeout_s``: on SIGTERM, how long the running job may
    take to finish. ``anomaly_sigma``: standard deviations from the baseline mean that
    make an anomaly. ``anomaly_min_requests``: requests a window needs before it is
    judged. ``smtp_url`` / ``smtp_from``: where alert emails go out (None: not sent).
    """

    aggregate_interval_s: float = 60.0
    anomalies_interval_s: float = 300.0
    recommendations_interval_s: float = 86_400.0
    partitions_interval_s: float = 3_600.0
    port: int = 8082
    job_timeout_s: float = 600.0
    shutdown_timeout_s: float = 60.0
    anomaly_sigma: float = 2.0
    anomaly_min_requests: int = 20
    smtp_url: str | None = MailSettings.url
    smtp_from: str = MailSettings.sender
    smtp_timeout_s: float = MailSettings.timeout_s
    partitions_ahead_days: int = 14
    retention_days: int = 90
    health_retention_days: int = 14

    def interval_s(self, job: str) -> float:
        return float(getattr(self, f"{job}_interval_s"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SchedulerSettings:
        """Unset or empty variables take the default; a bad value raises
        :class:`lectr.settings.SettingsError` naming the variable."""
        read = EnvReader(environ).read
        d = cls()
        mail = MailSettings.from_env(environ)
        intervals = {
            f"{job}_interval_s": read(
                f"LECTR_SCHEDULER_{job.upper()}_INTERVAL_S",
                d.interval_s(job),
                positive_float,
            )
            for job in JOB_NAMES
        }
        return cls(
            **intervals,
            port=read("LECTR_SCHEDULER_PORT", d.port, _port),
            job_timeout_s=read("LECTR_SCHEDULER_JOB_TIMEOUT_S", d.job_timeout_s, positive_float),
            shutdown_timeout_s=read(
                "LECTR_SCHEDULER_SHUTDOWN_TIMEOUT_S", d.shutdown_timeout_s, positive_float
            ),
            anomaly_sigma=read("LECTR_ANOMALY_SIGMA", d.anomaly_sigma, _sigma),
            anomaly_min_requests=read(
                "LECTR_ANOMALY_MIN_REQUESTS", d.anomaly_min_requests, positive_int
            ),
            smtp_url=mail.url,
            smtp_from=mail.sender,
            smtp_timeout_s=mail.timeout_s,
            partitions_ahead_days=read(
                "LECTR_PARTITIONS_AHEAD_DAYS", d.partitions_ahead_days, positive_int
            ),
            retention_days=read("LECTR_RETENTION_DAYS", d.retention_days, positive_int),
            health_retention_days=read(
                "LECTR_HEALTH_RETENTION_DAYS", d.health_retention_days, positive_int
            ),
        )
