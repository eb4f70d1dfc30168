"""``lectr demo``: a demo organisation with eight days of history, its summaries,
anomalies and recommendations, then live traffic through a local proxy.

1. Make (or reuse) the org ``demo``, revoke the keys earlier runs issued, issue one and
   print it with the dashboard's address.
2. Publish the synthetic history (:mod:`lectr.demo.history`) onto the ingest route, as a
   proxy would. Its event ids follow from the seed, the org and the hour it ends at, so a
   re-run within that hour publishes the same events (stored once: inserts are
   idempotent by id); once the org has history made for another hour, it is not
   published again (``--purge`` starts over), so history is never doubled.
3. Wait until the consumers stored it, starting a ``lectr consumer`` of its own when the
   ingest queue has none, then run the scheduler jobs once, in order.
4. Unless ``--no-live``: run a simulated provider and a ``lectr proxy`` pointed at it, and
   send ``--live-rps`` requests a second through it until Ctrl-C or SIGTERM.

``lectr demo --purge`` deletes the demo org and all its data.

Process packages are never imported: proxy, consumer and scheduler run as
``python -m lectr …`` subprocesses (:mod:`lectr.demo.children`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import time
from datetime import UTC, datetime

import asyncpg

from lectr.db import connection
from lectr.demo import history as hist
from lectr.demo import org
from lectr.demo.children import Child, child_env, run_job, wait_for_health
from lectr.demo.live import LiveTraffic
from lectr.demo.provider import SimulatedProvider
from lectr.demo.publish import Publisher
from lectr.demo.settings import DemoSettings
from lectr.errors import CommandError
from lectr.notify import notify_proxies
from lectr.settings import DEV_ADMIN_SECRET, EnvReader, Settings, positive_float
from schema.control import CACHES

DEFAULT_SEED = 20261202
JOBS = ("aggregate", "anomalies", "recommendations", "aggregate")
PROXY_INSTANCE = "lectr-demo-proxy"
# Seconds the demo needs from publishing to the anomalies job; closer to the end of an
# hour than this, it waits for the next hour so the incidents land in the judged hour.
HOUR_MARGIN_S = 75.0
PROGRESS_EVERY_S = 10.0
PROXY_READY_TIMEOUT_S = 60.0
CONSUMER_STOP_TIMEOUT_S = 45.0
# What `lectr demo` gives its own processes unless the environment says otherwise.
QUIET = {"LECTR_LOG_LEVEL": "WARNING"}
CONSUMER_DEFAULTS = {
    **QUIET,
    "LECTR_CONSUMER_BATCH_SIZE": "500",
    "LECTR_CONSUMER_FLUSH_INTERVAL_S": "0.2",
}
PROXY_DEFAULTS = {**QUIET, "LECTR_PROXY_SHUTDOWN_TIMEOUT_S": "5"}
REMOVED_LABELS = {
    "request_logs": "request logs",
    "request_rollups": "hourly rollups",
    "dashboard_summaries": "dashboard summaries",
    "api_keys": "keys",
    "anomalies": "anomalies",
    "recommendations": "recommendations",
    "routing_rules": "routing rules",
    "org_members": "members",
}


def add_parsers(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo",
        help="load a demo organisation with 8 days of history, then send live traffic "
        "through a local proxy (--purge removes it)",
        description="Make the organisation 'demo' with a fresh key, load 8 days of "
        "synthetic history, run the scheduler jobs, then send live traffic through a "
        "proxy of its own to a simulated provider until Ctrl-C.",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="seed of the synthetic history"
    )
    parser.add_argument(
        "--no-live", action="store_true", help="stop once history and jobs are done"
    )
    parser.add_argument(
        "--live-rps",
        type=_positive_number,
        default=2.0,
        metavar="N",
        help="live requests a second (default 2)",
    )
    parser.add_argument(
        "--alert-email",
        default="demo@example.com",
        metavar="ADDRESS",
        help="an alert recipient for the demo org (default demo@example.com; '' for none)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_number,
        default=180.0,
        metavar="S",
        help="seconds to wait for the history to be stored (default 180)",
    )
    parser.add_argument(
        "--purge", action="store_true", help="delete the demo organisation and all its data"
    )


def _positive_number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"must be above 0, got {value!r}")
    return number


def run(args: argparse.Namespace, settings: Settings) -> int:
    demo_settings = DemoSettings.from_env()
    if args.purge:
        return asyncio.run(purge(settings))
    return asyncio.run(Demo(args, settings, demo_settings).main())


async def purge(settings: Settings) -> int:
    async with connection(settings.database_url) as conn:
        found = await org.purge(conn)
    if found is None:
        print(f"nothing to purge: there is no organisation named {org.ORG_NAME!r}")
        return 0
    org_id, removed = found
    await notify_proxies(settings, org_id, CACHES)
    counts = ", ".join(f"{removed[table]:,} {label}" for table, label in REMOVED_LABELS.items())
    print(f"removed the organisation {org.ORG_NAME!r} ({org_id}) and its data: {counts}")
    return 0


class Demo:
    def __init__(
        self, args: argparse.Namespace, settings: Settings, demo_settings: DemoSettings
    ) -> None:
        self.args = args
        self.settings = settings
        self.demo_settings = demo_settings
        self.stop = asyncio.Event()
        self.live = False
        self.children: list[Child] = []
        self.provider: SimulatedProvider | None = None
        self._task: asyncio.Task[int] | None = None
        self.demo: org.DemoOrg

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()  # type: ignore[assignment]
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal)
        try:
            if not self.args.no_live:
                _check_port_free(self._proxy_host(), self.demo_settings.proxy_port)
            await self._prepare()
            if self.args.no_live:
                return 0
            return await self._run_live()
        except asyncio.CancelledError:
            if self.stop.is_set():
                raise CommandError("interrupted; stopped what the demo had started", 130) from None
            raise
        finally:
            await self._cleanup()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    def _on_signal(self) -> None:
        if self.stop.is_set():
            return
        self.stop.set()
        if not self.live and self._task is not None:
            self._task.cancel()

    # -- steps 1-3: org, history, jobs --------------------------------------------------

    async def _prepare(self) -> None:
        started = time.monotonic()
        took: dict[str, float] = {}
        async with (
            connection(self.settings.database_url) as conn,
            Publisher(self.settings) as publisher,
        ):
            await _check_schema(conn)
            alert = self.args.alert_email.strip() or None
            self.demo = await org.prepare(conn, pepper=self.settings.key_pepper, alert_email=alert)
            await notify_proxies(self.settings, self.demo.org_id, ("orgs", "keys"))
            self._print_org()
            until = await self._hour_to_end_at()
            mark = time.monotonic()
            history = hist.build(
                seed=self.args.seed,
                org_id=self.demo.org_id,
                key_id=self.demo.key_id,
                until=until,
                prices=hist.Prices.load(),
            )
            took["history made"] = time.monotonic() - mark
            publish = await self._should_publish(conn, history)
            if publish or not self.args.no_live:
                await self._ensure_consumer(publisher)
            if publish:
                mark = time.monotonic()
                messages = await publisher.publish(history.events)
                took["published"] = time.monotonic() - mark
                _say(
                    f"published {len(history.events):,} history events in {messages} messages "
                    f"in {took['published']:.1f} s"
                )
                _describe(history)
                mark = time.monotonic()
                await self._wait_until_stored(conn, len(history.events))
                took["stored"] = time.monotonic() - mark
        mark = time.monotonic()
        await self._run_jobs(until)
        took["jobs"] = time.monotonic() - mark
        phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in took.items())
        _say(f"demo data ready in {time.monotonic() - started:.1f} s ({phases})")

    def _print_org(self) -> None:
        demo = self.demo
        how = "Created" if demo.created else "Reusing"
        revoked = f"; revoked {demo.revoked_keys} earlier demo key(s)" if demo.revoked_keys else ""
        _say(f"{how} organisation {org.ORG_NAME!r}{revoked}")
        _say(f"  org id: {demo.org_id}")
        _say(f"  key id: {demo.key_id}")
        _say(f"  key:    {demo.key}")
        _say("Store the key now: Lectr keeps only a hash of it and cannot show it again.")
        secret = "LECTR_ADMIN_SECRET"
        if self.settings.admin_secret == DEV_ADMIN_SECRET:
            secret += f", here the development default {DEV_ADMIN_SECRET!r}"
        _say(
            f"Dashboard: {self.settings.dashboard_url}/orgs/{demo.org_id} "
            f"(sign in with the admin secret, {secret})"
        )

    async def _hour_to_end_at(self) -> datetime:
        """The hour the history ends at: the current hour's start, after waiting for the
        next one when this one ends before the anomalies job could run."""
        now = datetime.now(UTC)
        left = 3600.0 - (now.minute * 60 + now.second + now.microsecond / 1e6)
        if left < HOUR_MARGIN_S:
            _say(
                f"waiting {left:.0f} s for the next UTC hour, so the incidents land in the "
                "hour the anomalies job judges"
            )
            await asyncio.sleep(left + 1.0)
        return hist.hour_start(datetime.now(UTC))

    async def _should_publish(self, conn: asyncpg.Connection, history: hist.History) -> bool:
        stored = await org.stored_history(conn, self.demo.org_id, hist.HISTORY_INSTANCE)
        if stored == 0:
            return True
        ids = [event.id for event in history.events]
        same = await org.stored_of(conn, self.demo.org_id, ids)
        if same >= len(ids):
            _say(f"the demo history is already stored ({same:,} events); not publishing")
            return False
        if same:
            return True  # the same events again: whatever is missing is stored, once
        _say(
            f"the demo org already has its history ({stored:,} events, made in an earlier "
            "hour); not publishing it again (`lectr demo --purge` starts over)"
        )
        return False

    async def _ensure_consumer(self, publisher: Publisher) -> None:
        ingest = await publisher.ingest()
        if ingest.consumers:
            _say(f"{ingest.consumers} consumer(s) read {ingest.queue}; using them")
            return
        env = child_env(CONSUMER_DEFAULTS)
        self.children.append(
            await Child.start("consumer", ("consumer",), env, CONSUMER_STOP_TIMEOUT_S)
        )
        _say(f"no consumer reads {ingest.queue}: started one (`lectr consumer`) for this demo")

    async def _wait_until_stored(self, conn: asyncpg.Connection, total: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.args.timeout
        next_progress = loop.time() + PROGRESS_EVERY_S
        while True:
            stored = await org.stored_history(conn, self.demo.org_id, hist.HISTORY_INSTANCE)
            if stored >= total:
                _say(f"stored all {total:,} history events")
                return
            for child in self.children:
                if not child.running:
                    raise CommandError(
                        f"the demo's {child.name} exited with code {child.process.returncode} "
                        f"after storing {stored:,} of {total:,} history events"
                    )
            if loop.time() > deadline:
                raise CommandError(
                    f"only {stored:,} of {total:,} history events were stored after "
                    f"{self.args.timeout:.0f} s: is a consumer reading "
                    f"{self.settings.broker_prefix}.ingest into this LECTR_DATABASE_URL? "
                    "(`lectr dead list` shows events a consumer could not store)"
                )
            if loop.time() >= next_progress:
                _say(f"stored {stored:,} of {total:,} history events…")
                next_progress = loop.time() + PROGRESS_EVERY_S
            await asyncio.sleep(0.25)

    async def _run_jobs(self, until: datetime) -> None:
        env = child_env(QUIET)
        for job in JOBS:
            if job == "anomalies" and hist.hour_start(datetime.now(UTC)) != until:
                _say(
                    "note: the UTC hour turned while the history was stored, so the "
                    "anomalies job judges an hour without the incidents"
                )
            result = await run_job(job, env)
            _say(f"  {result.line}")
            if not result.ok:
                if result.stderr:
                    _say(result.stderr)
                raise CommandError(f"the scheduler's {job} job failed (its messages are above)")

    # -- step 4: live traffic -----------------------------------------------------------

    async def _run_live(self) -> int:
        self.provider = SimulatedProvider(error_rate=0.01, seed=self.args.seed)
        await self.provider.start()
        urls = self.provider.base_urls()
        port = self.demo_settings.proxy_port
        env = child_env(
            PROXY_DEFAULTS,
            {
                "LECTR_PROXY_PORT": str(port),
                "LECTR_PROXY_WORKERS": "1",
                "LECTR_INSTANCE_NAME": PROXY_INSTANCE,
                **{f"LECTR_{name.upper()}_BASE_URL": url for name, url in urls.items()},
            },
        )
        proxy = await Child.start("proxy", ("proxy",), env, _proxy_stop_timeout_s(env))
        self.children.append(proxy)
        url = f"http://{self._proxy_host()}:{port}"
        await wait_for_health(url, proxy, PROXY_READY_TIMEOUT_S)
        self.live = True
        if self.stop.is_set():
            return 0
        _say(
            f"live: {self.args.live_rps:g} requests a second through the demo proxy at {url} "
            f"(simulated providers at {self.provider.url}); Ctrl-C stops"
        )
        traffic = LiveTraffic(
            url,
            self.demo.key,
            self.args.live_rps,
            seed=self.args.seed,
            alive=lambda: proxy.running,
        )
        totals = await traffic.run(self.stop, report=_say)
        if not self.stop.is_set():
            raise CommandError(
                f"the demo proxy exited with code {proxy.process.returncode}; live traffic stopped"
            )
        _say(f"stopped live traffic: {totals.sent:,} requests sent, {totals.failed:,} failed")
        return 0

    def _proxy_host(self) -> str:
        """Where the demo's client reaches the proxy, which listens on LECTR_HOST."""
        host = self.settings.host
        return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host

    async def _cleanup(self) -> None:
        """Stop what the demo started, newest first (proxy, then consumer)."""
        for child in reversed(self.children):
            if child.running:
                code = await child.stop()
                _say(f"stopped the demo's {child.name} (exit code {code})")
        self.children.clear()
        if self.provider is not None:
            with contextlib.suppress(Exception):
                await self.provider.stop()
            self.provider = None


async def _check_schema(conn: asyncpg.Connection) -> None:
    from lectr import migrations  # Alembic loads only here

    found = await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
    current = await conn.fetchval("SELECT version_num FROM alembic_version") if found else None
    if current != migrations.head_revision():
        raise CommandError("the database is not at the latest schema; run `lectr migrate` first")


def _check_port_free(host: str, port: int) -> None:
    """Fail before doing anything when the demo proxy's port is taken."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise CommandError(
                f"LECTR_DEMO_PROXY_PORT: cannot listen on {host}:{port} ({exc.strerror}); "
                "set it to a free port, or run with --no-live"
            ) from None


def _proxy_stop_timeout_s(env: dict[str, str]) -> float:
    """How long the proxy needs after SIGTERM with these settings (as for `lectr up`)."""
    read = EnvReader(env).read
    shutdown = read("LECTR_PROXY_SHUTDOWN_TIMEOUT_S", 20.0, positive_float)
    broker_wait = read("LECTR_PROXY_BROKER_WAIT_S", 5.0, positive_float)
    return shutdown + broker_wait + 16.0


def _describe(history: hist.History) -> None:
    first = f"{history.first_hour:%Y-%m-%d %H:%M}"
    spike = f"{history.spike_hour:%Y-%m-%d %H:%M}"
    features = ", ".join(f"{name} {count:,}" for name, count in history.by_feature.items())
    _say(f"  8 days from {first} UTC: {features}")
    _say(
        f"  incident hour {spike} UTC: cost ${history.spike_cost:,.2f} (baseline "
        f"${history.baseline_cost_per_hour:,.2f}/h), error rate "
        f"{history.spike_error_rate:.0%} (baseline {history.baseline_error_rate:.1%})"
    )


def _say(line: str) -> None:
    print(line, flush=True)
