"""Judging the window against its baseline, for every scope and kind at once.

For each kind, the baseline is the scope's 168 hourly values before the window (hours
covered by a dismissed anomaly of the same scope and kind left out; hours without a
value, e.g. no requests for latency, left out too). ``mean`` and ``std`` come from
pandas (sample standard deviation); ``sigma`` is ``std`` raised to a floor, so a flat
baseline does not turn every wobble into an anomaly:

============  ==============================================  ================================
kind          sigma = max(std, ...)                           why
============  ==============================================  ================================
cost          10 % of the mean, 0.01 USD                      a cent an hour is nobody's alarm
latency       20 % of the mean, 50 ms                         see below
error_rate    0.02 (two points of error rate)                 1 error in 30 requests is 3 %
traffic       sqrt(mean) (Poisson noise), 10 % of mean, 1     counts are Poisson noisy at least
model_drift   0.05 (5 % of requests)                          the baseline is mostly 0
============  ==============================================  ================================

Latency's floor is wider than cost's because p95 is read from histogram buckets about
25 % wide: with steady latencies, a 5 % shift that crosses a bucket bound moves the p95
by a whole bucket, and 2 sigma must not call that an anomaly.

z = (observed - mean) / sigma. Cost, latency, error rate and drift are anomalous only
upwards (z > S), traffic both ways (|z| > S), S = ``LECTR_ANOMALY_SIGMA``. Severity is
``critical`` above 2 S (4 sigma by default), else ``warning``.

Guards before a scope and kind is judged at all: at least :data:`MIN_BASELINE_HOURS`
baseline hours with requests and a value (a feature born yesterday has no baseline
yet); the window needs ``LECTR_ANOMALY_MIN_REQUESTS`` requests (for drift: requests
that could be judged), except traffic, which needs a baseline mean of that many
requests instead, since a drop to zero is exactly a traffic anomaly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scheduler.anomaly_series import SCOPE, HourlyValues

MIN_BASELINE_HOURS = 24

Floor = Callable[[pd.Series], pd.Series | float]


@dataclass(frozen=True)
class Kind:
    """An anomaly kind: its column in the hourly values, the floor on sigma given the
    baseline mean, whether a drop counts, and the column of the window's volume."""

    name: str
    floor: Floor
    both_ways: bool = False
    volume: str = "requests"


KINDS = (
    Kind("cost", lambda mean: np.maximum(0.1 * mean, 0.01)),
    Kind("latency", lambda mean: np.maximum(0.2 * mean, 50.0)),
    Kind("error_rate", lambda mean: 0.02),
    Kind(
        "traffic",
        lambda mean: np.maximum(np.sqrt(mean), np.maximum(0.1 * mean, 1.0)),
        both_ways=True,
    ),
    Kind("model_drift", lambda mean: 0.05, volume="drift_requests"),
)

VERDICT_COLUMNS = [
    *SCOPE, "kind", "judged", "anomalous", "severity", "observed", "mean", "std", "sigma",
    "floor_applied", "z", "threshold", "baseline_hours", "window_requests",
]  # fmt: skip


def judge(
    values: HourlyValues, excluded: pd.DataFrame, *, sigma: float, min_requests: int
) -> pd.DataFrame:
    """One verdict row per scope x kind (:data:`VERDICT_COLUMNS`).

    ``excluded``: hours left out of a kind's baseline (columns org_id, feature, kind,
    bucket_start), e.g. those of dismissed anomalies."""
    frames = [
        _judge_kind(kind, values, excluded, sigma=sigma, min_requests=min_requests)
        for kind in KINDS
    ]
    return pd.concat(frames, ignore_index=True)[VERDICT_COLUMNS]


def _left_out(kind: str, values: HourlyValues, excluded: pd.DataFrame) -> np.ndarray:
    """A (scopes x baseline hours) mask of the hours ``excluded`` names for ``kind``."""
    mask = np.zeros((len(values.scopes), len(values.hours) - 1), dtype=bool)
    mine = excluded[excluded["kind"] == kind]
    if not mine.empty:
        scope = values.scopes.get_indexer(pd.MultiIndex.from_frame(mine[SCOPE]))
        hour = values.hours[:-1].get_indexer(pd.DatetimeIndex(mine["bucket_start"]))
        found = (scope >= 0) & (hour >= 0)
        mask[scope[found], hour[found]] = True
    return mask


def _judge_kind(
    kind: Kind, values: HourlyValues, excluded: pd.DataFrame, *, sigma: float, min_requests: int
) -> pd.DataFrame:
    matrix = values.metrics[kind.name].to_numpy()
    baseline = matrix[:, :-1].copy()
    baseline[_left_out(kind.name, values, excluded)] = np.nan
    with_requests = values.metrics["requests"].to_numpy()[:, :-1] > 0
    frame = pd.DataFrame(baseline, index=values.scopes)
    stats = pd.DataFrame(
        {
            "mean": frame.mean(axis=1),
            "std": frame.std(axis=1),
            "baseline_hours": frame.count(axis=1),
            "history_hours": (with_requests & ~np.isnan(baseline)).sum(axis=1),
            "observed": matrix[:, -1],
            "volume": values.metrics[kind.volume].to_numpy()[:, -1],
        },
        index=values.scopes,
    )
    return _verdicts(kind, stats, sigma=sigma, min_requests=min_requests)


def _verdicts(kind: Kind, stats: pd.DataFrame, *, sigma: float, min_requests: int) -> pd.DataFrame:
    mean, std, observed = stats["mean"], stats["std"], stats["observed"]
    sigma_eff = np.maximum(std.fillna(0.0), kind.floor(mean))
    z = (observed - mean) / sigma_eff
    volume_ok = mean >= min_requests if kind.name == "traffic" else stats["volume"] >= min_requests
    judged = (stats["history_hours"] >= MIN_BASELINE_HOURS) & observed.notna() & volume_ok
    out_of_range = (z > sigma) | ((z < -sigma) if kind.both_ways else False)
    down = kind.both_ways & (z < 0)
    return stats.assign(
        kind=kind.name,
        judged=judged,
        anomalous=judged & out_of_range,
        severity=np.where(z.abs() > 2 * sigma, "critical", "warning"),
        sigma=sigma_eff,
        floor_applied=~(std >= sigma_eff),
        z=z,
        threshold=np.where(down, mean - sigma * sigma_eff, mean + sigma * sigma_eff),
        window_requests=stats["volume"],
    ).reset_index()
