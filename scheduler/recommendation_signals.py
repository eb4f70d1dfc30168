"""What the recommendation engine knows about a group of traffic, from rollups alone.

A group is one org x feature x provider x model (the model requests were sent for),
over the engine's window. Everything here is a sum or a ratio of rollup counts, plus
the p95 read from the merged latency histograms, so computing it costs rollup rows,
never requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from scheduler.rollups import HIST, percentiles

GROUP = ["org_id", "feature", "provider", "model"]
# The rollup keys the signals need (with org_id): Postgres adds up the rest.
SIGNAL_KEYS = ("feature", "provider", "model", "task_type")
_SUMS = ["request_count", "error_count", "input_tokens", "output_tokens", "cached_tokens",
         "tokens_known_count", "unpriced_count", "cost_usd"]  # fmt: skip
DOMINANT_SHARE = 0.6
"""A task type dominates a group when at least this share of its requests carry it."""


@dataclass(frozen=True)
class Signals:
    """One group's evidence. Token means are over the requests whose tokens are known
    (None when none are); ``task_shares`` maps each task type ('' = none given) to its
    share of the requests."""

    org_id: str
    feature: str
    provider: str
    model: str
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    tokens_known: int
    unpriced: int
    cost_usd: float
    p95_latency_ms: float | None
    first_hour: datetime
    task_shares: dict[str, float] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def mean_prompt_tokens(self) -> float | None:
        return self.input_tokens / self.tokens_known if self.tokens_known else None

    @property
    def mean_completion_tokens(self) -> float | None:
        return self.output_tokens / self.tokens_known if self.tokens_known else None

    @property
    def dominant(self) -> tuple[str, float] | None:
        """The task type (never '') carried by at least :data:`DOMINANT_SHARE` of the
        requests, with its share; None when no task type does."""
        for task, share in self.task_shares.items():
            if task and share >= DOMINANT_SHARE:
                return task, share
        return None


def group_signals(frame: pd.DataFrame, min_requests: int) -> list[Signals]:
    """The signals of every group of ``frame`` (rows of :func:`scheduler.rollups.load`)
    with at least ``min_requests`` requests, in a stable order."""
    if frame.empty:
        return []
    grouped = frame.groupby(GROUP, sort=True)
    sums = grouped[[*_SUMS, *HIST]].sum()
    sums = sums[sums["request_count"] >= min_requests]
    if sums.empty:
        return []
    first = grouped["bucket_start"].min()
    p95 = percentiles(sums[list(HIST)].to_numpy(), 0.95)
    tasks = frame.groupby([*GROUP, "task_type"], sort=True)["request_count"].sum()
    shares = _task_shares(tasks, sums["request_count"])
    signals = []
    for position, (key, row) in enumerate(sums.iterrows()):
        org_id, feature, provider, model = key
        signals.append(
            Signals(
                org_id=org_id,
                feature=feature,
                provider=provider,
                model=model,
                requests=int(row["request_count"]),
                errors=int(row["error_count"]),
                input_tokens=int(row["input_tokens"]),
                output_tokens=int(row["output_tokens"]),
                cached_tokens=int(row["cached_tokens"]),
                tokens_known=int(row["tokens_known_count"]),
                unpriced=int(row["unpriced_count"]),
                cost_usd=float(row["cost_usd"]),
                p95_latency_ms=None if pd.isna(p95[position]) else float(p95[position]),
                first_hour=first.loc[key].to_pydatetime(),
                task_shares=shares.get(key, {}),
            )
        )
    return signals


def _task_shares(
    tasks: pd.Series, totals: pd.Series
) -> dict[tuple[str, str, str, str], dict[str, float]]:
    """Per group key, each task type's share of the requests, largest first."""
    out: dict[tuple[str, str, str, str], dict[str, float]] = {}
    for key, count in tasks.sort_values(ascending=False, kind="stable").items():
        group = key[:4]
        if group in totals.index:
            out.setdefault(group, {})[key[4]] = int(count) / int(totals.loc[group])
    return out
