"""Hourly values of every anomaly metric, per org overall and per org x feature.

The anomaly detector compares the last full hour with the 168 hours before it. This
module turns rollup rows (:func:`scheduler.rollups.load` over those 169 hours) into one
matrix per metric, a row per scope and a column per hour, every hour present whether
or not it had requests, so that a quiet hour counts as zero traffic instead of vanishing
from the baseline. Scopes are those with at least one rollup row.

Metrics, with their units (an anomaly row's ``observed`` and ``baseline`` use them):

- ``requests``, ``traffic``: requests in the hour;
- ``cost``: spend in USD in the hour;
- ``error_rate``: errors / requests (0..1), NaN for an hour without requests;
- ``latency``: p95 latency in ms from the hour's merged histograms, NaN without requests;
- ``model_drift``: share (0..1) of the hour's judgeable requests answered by a
  ``response_model`` never seen answering their sent model (see :func:`_model_drift`),
  NaN when no request in the hour could be judged; ``drift_requests``: how many could.

The overall scope uses the feature :data:`OVERALL`, a value no stored feature can take
(Postgres text cannot hold NUL); it is written as ``feature IS NULL``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scheduler.rollups import HIST, HOUR, percentiles

OVERALL = "\x00"
SCOPE = ["org_id", "feature"]
PAIR = ["provider", "model", "response_model"]


@dataclass(frozen=True)
class HourlyValues:
    """``metrics[name]``: a frame indexed by ``scopes`` (org_id, feature) with one
    column per hour of ``hours`` (the baseline, then the window last). ``new_pairs``: the
    window's requests whose (sent model -> response model) pair is new: org_id, feature,
    provider, model, response_model, requests."""

    scopes: pd.MultiIndex
    hours: pd.DatetimeIndex
    metrics: dict[str, pd.DataFrame]
    new_pairs: pd.DataFrame

    def recent(self, scope: tuple[str, str], metric: str) -> list[dict[str, object]]:
        """The last 25 hourly values of ``metric`` for ``scope`` (24 hours before the
        window, then the window): ``[{"hour": ISO time, "value": float or None}]``."""
        series = self.metrics[metric].loc[scope].iloc[-25:]
        return [
            {"hour": hour.isoformat(), "value": None if pd.isna(value) else float(value)}
            for hour, value in series.items()
        ]


def hourly_values(frame: pd.DataFrame, hours: pd.DatetimeIndex) -> HourlyValues:
    """The metrics of the rollup rows in ``frame`` (all within ``hours``)."""
    scoped = pd.concat([frame, frame.assign(feature=OVERALL)], ignore_index=True)
    by_scope = scoped.groupby(SCOPE, sort=True)
    scopes = pd.MultiIndex.from_frame(by_scope.size().index.to_frame(index=False))
    # Cells (scope, hour) are numbered scope * len(hours) + hour: int keys group fast.
    hour = ((scoped["bucket_start"] - hours[0]) // HOUR).to_numpy(dtype=np.int64)
    cell = by_scope.ngroup().to_numpy(dtype=np.int64) * len(hours) + hour
    sums = scoped[["request_count", "error_count", "cost_usd", *HIST]].groupby(cell).sum()
    shape = (len(scopes), len(hours))

    def dense(values: np.ndarray, cells: np.ndarray, fill: float) -> pd.DataFrame:
        matrix = np.full(shape[0] * shape[1], fill, dtype=np.float64)
        matrix[cells] = values
        return pd.DataFrame(matrix.reshape(shape), index=scopes, columns=hours)

    cells = sums.index.to_numpy()
    requests = sums["request_count"].to_numpy(dtype=np.float64)
    answered = requests > 0
    metrics = {
        "requests": dense(requests, cells, 0.0),
        "cost": dense(sums["cost_usd"].to_numpy(dtype=np.float64), cells, 0.0),
        "error_rate": dense(
            sums["error_count"].to_numpy()[answered] / requests[answered], cells[answered], np.nan
        ),
        "latency": dense(percentiles(sums[list(HIST)].to_numpy(), 0.95), cells, np.nan),
    }
    metrics["traffic"] = metrics["requests"]
    drift, new_pairs = _model_drift(scoped, cell, len(hours))
    judged = drift["drift_requests"] > 0
    metrics["drift_requests"] = dense(drift["drift_requests"].to_numpy(), drift.index, 0.0)
    metrics["model_drift"] = dense(
        (drift["drift_new"] / drift["drift_requests"])[judged].to_numpy(),
        drift.index[judged],
        np.nan,
    )
    new_pairs = new_pairs.assign(
        org_id=scopes.get_level_values(0)[new_pairs["cell"] // len(hours)],
        feature=scopes.get_level_values(1)[new_pairs["cell"] // len(hours)],
    )
    return HourlyValues(scopes, hours, metrics, new_pairs[[*SCOPE, *PAIR, "requests"]])


def _model_drift(
    scoped: pd.DataFrame, cell: np.ndarray, n_hours: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drift counts per cell (``drift_requests``, ``drift_new``), and the window's new
    pairs (``cell``, provider, model, response_model, ``requests``).

    Drift is measured on pairs (sent model -> response model): the sent model is the
    rollup's provider and model, i.e. the model the request was sent for after any rule,
    so a rule's rewrite changes the sent model, not the pair, and is not drift. A request
    can be judged when it names a response model and its sent model answered in the
    baseline; it drifted when its pair was never seen in the baseline.

    Baseline hours are judged leave-one-hour-out: against the baseline without that hour
    (a pair seen only in that hour is new; a sent model seen only then cannot be judged),
    so the baseline carries the natural noise of rare pairs and its sigma means something.
    Pairs seen in hours of a dismissed drift anomaly still count as seen: dismissing says
    the new answering model is fine (only those hours' drift values leave the baseline).
    """
    keep = ((scoped["response_model"] != "") & (scoped["request_count"] > 0)).to_numpy()
    rows = scoped.loc[keep, [*PAIR, "request_count"]].assign(cell=cell[keep])
    rows["scope"] = rows["cell"] // n_hours
    rows["pair"] = rows.groupby(PAIR, sort=False).ngroup()
    rows["sent"] = rows.groupby(PAIR[:2], sort=False).ngroup()
    pairs = rows.groupby(["cell", "pair"], as_index=False).agg(
        scope=("scope", "first"), sent=("sent", "first"), requests=("request_count", "sum")
    )
    in_window = (pairs["cell"] % n_hours == n_hours - 1).to_numpy()
    baseline = pairs[~in_window]
    pair_hours = baseline.groupby(["scope", "pair"]).size().rename("pair_hours")
    sent_hours = baseline.groupby(["scope", "sent"])["cell"].nunique().rename("sent_hours")
    pairs = pairs.join(pair_hours, on=["scope", "pair"]).join(sent_hours, on=["scope", "sent"])
    # The window is judged against the whole baseline, a baseline hour against the rest.
    others = np.where(in_window, 0, 1)
    judgeable = pairs["sent_hours"].fillna(0).to_numpy() > others
    new = judgeable & (pairs["pair_hours"].fillna(0).to_numpy() == others)
    pairs["drift_requests"] = np.where(judgeable, pairs["requests"], 0)
    pairs["drift_new"] = np.where(new, pairs["requests"], 0)
    per_cell = pairs.groupby("cell")[["drift_requests", "drift_new"]].sum().astype(np.float64)
    names = rows.groupby("pair")[PAIR].first()
    window_new = pairs.loc[in_window & new, ["cell", "pair", "requests"]]
    window_new = window_new.join(names, on="pair").drop(columns="pair")
    return per_cell, window_new
