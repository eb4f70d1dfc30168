"""Eight days of synthetic, realistic request events for the demo organisation.

The events are exactly what a proxy publishes (:class:`schema.events.RequestEvent`, with
the token counts a provider reported and never any text): the features and models of
:mod:`lectr.demo.catalogue`, a working-day rhythm with quieter weekends, Poisson noise
per hour and day-to-day drift, log-normal token counts and latencies, streams, cached
prompt tokens and about 1-2 % errors of the kinds the proxy records.

The last full hour before ``until`` holds two incidents, sized from the baseline this
history itself has, so the ``anomalies`` job (mean and standard deviation of the 168
hours before that hour) flags both whatever the hour of day:

- cost: an agent loop in ``code-review`` sends very long prompts to Claude Sonnet,
  costing the baseline's mean plus 6 of its standard deviations (or of the job's floor);
- error rate: Anthropic is overloaded, so its requests in that hour fail (529
  ``server_error`` and 429 ``rate_limited``) until the hour's error rate is at least
  25 % and 6 standard deviations (or floors) above the baseline's.

Everything is drawn from one generator seeded with (seed, org, ``until``), so the same
inputs give the same events, ids included.
"""

from __future__ import annotations

import math
import random
import statistics
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from lectr.demo.catalogue import ENDPOINTS, FEATURES, Feature, ModelUse, answered_by, feature
from schema.events import RequestEvent
from schema.reference_data import load_pricing

HOURS = 8 * 24
BASELINE_HOURS = 168
# proxy_instance of every history event, which tells them from live traffic.
HISTORY_INSTANCE = "lectr-demo-history"
HOUR = timedelta(hours=1)
# Busiest hour of the day (UTC): European afternoon, American morning.
PEAK_HOUR = 14
# How many of the anomaly job's sigmas above the baseline mean each incident reaches.
SPIKE_SIGMAS = 6.0
MIN_SPIKE_ERROR_RATE = 0.25
# Floors the anomaly job puts under a baseline's standard deviation.
COST_FLOOR_SHARE, COST_FLOOR_USD, ERROR_RATE_FLOOR = 0.1, 0.01, 0.02
MIN_WINDOW_REQUESTS = 30
AGENT_LOOP = ("code-review", "anthropic", "claude-sonnet-4-6")
OVERLOADED_PROVIDER = "anthropic"

# (category, source, share of errors, status codes) as the proxy records them.
FAILURES: tuple[tuple[str, str, float, tuple[int, ...]], ...] = (
    ("rate_limited", "provider", 0.34, (429,)),
    ("server_error", "provider", 0.24, (500, 502, 503)),
    ("bad_request", "provider", 0.12, (400,)),
    ("provider_timeout", "network", 0.08, (504,)),
    ("upstream_disconnect", "provider", 0.12, (200,)),
    ("client_disconnect", "client", 0.10, (499,)),
)
# Version 4 UUID bits, as the proxy sets them on its random ids.
_V4_CLEAR = ~(0xF000 << 64 | 0xC000 << 48) & (1 << 128) - 1
_V4_SET = 0x4000 << 64 | 0x8000 << 48


@dataclass(frozen=True)
class Prices:
    """USD per million tokens (input, output, cached input) by (provider, model)."""

    table: dict[tuple[str, str], tuple[float, float, float]]

    @classmethod
    def load(cls) -> Prices:
        table = {}
        for p in load_pricing().prices:
            cached = p.cached_input_per_mtok
            if cached is None:
                cached = p.input_per_mtok
            table[(p.provider, p.model)] = (
                float(p.input_per_mtok),
                float(p.output_per_mtok),
                float(cached),
            )
        return cls(table)

    def cost(self, event: RequestEvent) -> float:
        """What the consumer will price ``event`` at (0 without token counts)."""
        rates = self.table.get((event.provider, event.actual_model or ""))
        if rates is None or event.input_tokens is None:
            return 0.0
        cached = min(event.cached_tokens or 0, event.input_tokens)
        fresh = event.input_tokens - cached
        usd = fresh * rates[0] + cached * rates[2] + (event.output_tokens or 0) * rates[1]
        return usd / 1_000_000


@dataclass
class History:
    """The events, oldest hour first, and what the incident hour holds."""

    events: list[RequestEvent]
    first_hour: datetime
    spike_hour: datetime
    baseline_cost_per_hour: float = 0.0
    spike_cost: float = 0.0
    baseline_error_rate: float = 0.0
    spike_error_rate: float = 0.0
    spike_requests: int = 0
    by_feature: dict[str, int] = field(default_factory=dict)


def hour_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def build(
    *, seed: int, org_id: uuid.UUID, key_id: uuid.UUID, until: datetime, prices: Prices
) -> History:
    """The history of the :data:`HOURS` whole hours before ``until`` (an hour start)."""
    return _Generator(seed, org_id, key_id, until, prices).history()


class _Generator:
    def __init__(
        self,
        seed: int,
        org_id: uuid.UUID,
        key_id: uuid.UUID,
        until: datetime,
        prices: Prices,
    ) -> None:
        self.rng = random.Random(f"lectr-demo:{seed}:{org_id}:{until.isoformat()}")
        self.org_id = org_id
        self.key_id = key_id
        self.until = until
        self.prices = prices

    def history(self) -> History:
        first = self.until - HOURS * HOUR
        spike_hour = self.until - HOUR
        events: list[RequestEvent] = []
        costs: dict[datetime, float] = defaultdict(float)
        errors: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])
        day_factor: dict[int, float] = {}
        window: list[RequestEvent] = []
        for index in range(HOURS):
            hour = first + index * HOUR
            day = index // 24
            if day not in day_factor:
                day_factor[day] = self.rng.lognormvariate(0.0, 0.1)
            made = self._hour(hour, day_factor[day])
            if hour == spike_hour:
                window = made
                continue
            events.extend(made)
            for event in made:
                costs[hour] += self.prices.cost(event)
                errors[hour][0] += 1
                errors[hour][1] += _failed(event)
        baseline = [first + i * HOUR for i in range(HOURS - 1 - BASELINE_HOURS, HOURS - 1)]
        hourly_cost = [costs[h] for h in baseline]
        hourly_errors = [errors[h][1] / errors[h][0] for h in baseline if errors[h][0]]
        window = self._incidents(window, spike_hour, hourly_cost, hourly_errors)
        events.extend(window)
        by_feature: dict[str, int] = defaultdict(int)
        for event in events:
            by_feature[event.feature] += 1
        return History(
            events=events,
            first_hour=first,
            spike_hour=spike_hour,
            baseline_cost_per_hour=statistics.fmean(hourly_cost),
            spike_cost=sum(self.prices.cost(e) for e in window),
            baseline_error_rate=statistics.fmean(hourly_errors),
            spike_error_rate=sum(map(_failed, window)) / len(window),
            spike_requests=len(window),
            by_feature=dict(by_feature),
        )

    # -- ordinary traffic ---------------------------------------------------------------

    def _hour(self, hour: datetime, day_factor: float) -> list[RequestEvent]:
        made: list[RequestEvent] = []
        for feat in FEATURES:
            rate = feat.peak_per_hour * _rhythm(feat, hour) * day_factor
            for _ in range(_poisson(self.rng, rate)):
                created = hour + timedelta(seconds=self.rng.uniform(0, 3599.9))
                made.append(self._request(feat, self._model(feat), created))
        made.sort(key=lambda e: e.created_at)
        return made

    def _model(self, feat: Feature) -> ModelUse:
        pick = self.rng.random()
        for use in feat.models:
            pick -= use.share
            if pick < 0:
                return use
        return feat.models[-1]

    def _request(
        self,
        feat: Feature,
        use: ModelUse,
        created: datetime,
        *,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        streaming: bool | None = None,
    ) -> RequestEvent:
        rng = self.rng
        if streaming is None:
            streaming = rng.random() < feat.streaming_share
        failure = _pick_failure(rng, streaming) if rng.random() < feat.error_rate else None
        if failure is not None:
            return self._failure(feat, use, created, streaming, failure)
        prompt = prompt_tokens or _tokens(rng, feat.prompt_tokens)
        completion = completion_tokens or _tokens(rng, feat.completion_tokens)
        cached = 0
        if feat.cached_share and prompt >= 1024 and rng.random() < 0.7:
            cached = int(prompt * feat.cached_share * rng.uniform(0.7, 1.0))
        ttfb = use.ttfb_ms * rng.lognormvariate(0.0, 0.3) + prompt / 100.0
        latency = ttfb + completion * use.ms_per_token * rng.lognormvariate(0.0, 0.15)
        if not streaming:  # the headers come once the whole answer is ready
            ttfb = latency * rng.uniform(0.97, 0.995)
        return self._event(
            feat,
            use,
            created,
            streaming=streaming,
            status=200,
            latency_ms=latency,
            ttfb_ms=ttfb,
            response_model=answered_by(use.model),
            tokens=(prompt, completion, cached if use.provider != "gemini" else None),
        )

    def _failure(
        self,
        feat: Feature,
        use: ModelUse,
        created: datetime,
        streaming: bool,
        failure: tuple[str, str, tuple[int, ...]],
    ) -> RequestEvent:
        rng = self.rng
        category, source, statuses = failure
        status = rng.choice(statuses)
        if category == "server_error" and use.provider == "anthropic" and rng.random() < 0.5:
            status = 529  # Anthropic's "overloaded"
        ttfb: float | None = None
        response_model = None
        if category == "rate_limited":
            latency = rng.uniform(60.0, 260.0)
        elif category == "bad_request":
            latency = rng.uniform(90.0, 320.0)
        elif category == "server_error":
            latency = rng.uniform(250.0, 2500.0)
        elif category == "provider_timeout":
            latency = 300_000.0 * rng.uniform(1.0, 1.002)
        else:  # a stream cut by the provider, or a client that went away
            ttfb = use.ttfb_ms * rng.lognormvariate(0.0, 0.3) if streaming else None
            latency = (ttfb or 0.0) + rng.uniform(200.0, 6000.0)
            response_model = answered_by(use.model) if streaming else None
        if ttfb is None and category not in ("provider_timeout", "client_disconnect"):
            ttfb = latency * 0.99
        return self._event(
            feat,
            use,
            created,
            streaming=streaming,
            status=status,
            latency_ms=latency,
            ttfb_ms=ttfb,
            response_model=response_model,
            error=(category, source),
        )

    def _event(
        self,
        feat: Feature,
        use: ModelUse,
        created: datetime,
        *,
        streaming: bool,
        status: int,
        latency_ms: float,
        ttfb_ms: float | None,
        response_model: str | None,
        tokens: tuple[int, int, int | None] | None = None,
        error: tuple[str, str] | None = None,
    ) -> RequestEvent:
        return RequestEvent(
            id=uuid.UUID(int=self.rng.getrandbits(128) & _V4_CLEAR | _V4_SET),
            created_at=created,
            completed_at=created + timedelta(milliseconds=latency_ms),
            org_id=self.org_id,
            api_key_id=self.key_id,
            provider=use.provider,
            endpoint=ENDPOINTS[use.provider],
            streaming=streaming,
            status_code=status,
            latency_ms=round(latency_ms, 3),
            ttfb_ms=None if ttfb_ms is None else round(ttfb_ms, 3),
            proxy_instance=HISTORY_INSTANCE,
            requested_model=use.model,
            actual_model=use.model,
            response_model=response_model,
            error_category=error[0] if error else None,
            error_source=error[1] if error else None,
            input_tokens=tokens[0] if tokens else None,
            output_tokens=tokens[1] if tokens else None,
            cached_tokens=tokens[2] if tokens else None,
            token_source="provider" if tokens else None,
            feature=feat.name,
            task_type=feat.task_type,
        )

    # -- the incident hour --------------------------------------------------------------

    def _incidents(
        self,
        window: list[RequestEvent],
        hour: datetime,
        hourly_cost: list[float],
        hourly_errors: list[float],
    ) -> list[RequestEvent]:
        """The window's ordinary traffic, plus the agent loop's cost and Anthropic's
        errors, each far enough above its baseline to be an anomaly."""
        mean, std = statistics.fmean(hourly_cost), statistics.stdev(hourly_cost)
        sigma = max(std, COST_FLOOR_SHARE * mean, COST_FLOOR_USD)
        loop = self._agent_loop(hour, mean + SPIKE_SIGMAS * sigma)
        window = [*window, *loop]
        mean, std = statistics.fmean(hourly_errors), statistics.stdev(hourly_errors)
        target = max(MIN_SPIKE_ERROR_RATE, mean + SPIKE_SIGMAS * max(std, ERROR_RATE_FLOOR))
        return self._overload(window, hour, target, {e.id for e in loop})

    def _agent_loop(self, hour: datetime, cost: float) -> list[RequestEvent]:
        """Successful, very long Claude Sonnet requests of ``code-review`` costing at
        least ``cost`` USD, spread over the hour."""
        name, provider, model = AGENT_LOOP
        feat = feature(name)
        use = next(u for u in feat.models if (u.provider, u.model) == (provider, model))
        made: list[RequestEvent] = []
        spent = 0.0
        while spent < cost or len(made) < 15:
            created = hour + timedelta(seconds=self.rng.uniform(0, 3599.9))
            event = self._request(
                feat,
                use,
                created,
                prompt_tokens=int(self.rng.uniform(38_000, 62_000)),
                completion_tokens=int(self.rng.uniform(1_500, 3_200)),
                streaming=False,
            )
            if event.error_category is not None:
                continue
            made.append(event)
            spent += self.prices.cost(event)
        return made

    def _overload(
        self, window: list[RequestEvent], hour: datetime, rate: float, keep: set[uuid.UUID]
    ) -> list[RequestEvent]:
        """``window`` with the overloaded provider's successful requests failing (apart
        from those in ``keep``), and more failing ones, until ``rate`` of it fails."""
        out = list(window)
        needed = math.ceil(rate * len(out)) - sum(map(_failed, out))
        for i, event in enumerate(out):
            if needed <= 0:
                break
            if _failed(event) or event.id in keep or event.provider != OVERLOADED_PROVIDER:
                continue
            out[i] = self._overloaded(event)
            needed -= 1
        support = feature("support-bot")
        while needed > 0 or len(out) < MIN_WINDOW_REQUESTS:
            created = hour + timedelta(seconds=self.rng.uniform(0, 3599.9))
            use = support.models[0]
            out.append(self._overloaded(self._request(support, use, created)))
            needed = math.ceil(rate * len(out)) - sum(map(_failed, out))
        out.sort(key=lambda e: e.created_at)
        return out

    def _overloaded(self, event: RequestEvent) -> RequestEvent:
        feat = feature(event.feature)
        use = next(u for u in feat.models if u.model == event.actual_model)
        rng = self.rng
        failure = ("rate_limited", "provider", (429,))
        if rng.random() < 0.7:
            failure = ("server_error", "provider", (529,))
        failed = self._failure(feat, use, event.created_at, event.streaming, failure)
        return failed


def _failed(event: RequestEvent) -> bool:
    """Whether the consumer counts ``event`` as an error."""
    return event.status_code >= 400 or event.status_code == 0 or event.error_category is not None


def _rhythm(feat: Feature, hour: datetime) -> float:
    """The share of its peak rate a feature sees in ``hour``: a working-day curve around
    :data:`PEAK_HOUR` UTC, lower at weekends, flattened by how little it follows it."""
    distance = min(abs(hour.hour - PEAK_HOUR), 24 - abs(hour.hour - PEAK_HOUR))
    day_curve = 0.2 + 0.8 * math.exp(-((distance / 4.5) ** 2))
    weekend = 1.0 - 0.45 * feat.diurnal if hour.weekday() >= 5 else 1.0
    return ((1.0 - feat.diurnal) + feat.diurnal * day_curve) * weekend


def _poisson(rng: random.Random, rate: float) -> int:
    if rate <= 0:
        return 0
    if rate > 50:
        return max(0, round(rng.gauss(rate, math.sqrt(rate))))
    limit, count, product = math.exp(-rate), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _tokens(rng: random.Random, median: int) -> int:
    return max(1, int(median * rng.lognormvariate(0.0, 0.45)))


def _pick_failure(rng: random.Random, streaming: bool) -> tuple[str, str, tuple[int, ...]]:
    pick = rng.random()
    chosen = FAILURES[-1]
    for failure in FAILURES:
        pick -= failure[2]
        if pick < 0:
            chosen = failure
            break
    category, source, _, statuses = chosen
    if category == "upstream_disconnect" and not streaming:
        category, source, statuses = "server_error", "provider", (500, 502, 503)
    return category, source, statuses
