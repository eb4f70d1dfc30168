"""``/metrics`` under ``lectr proxy --workers N``: one scrape, the sum over all workers.

The workers share one port, so a scrape reaches one of them at random. To answer for
all of them:

- the parent (:func:`proxy.workers.supervise`) makes a private directory (mode 0700)
  and names it to each worker in ``LECTR_PROXY_METRICS_SOCKET_DIR``, an internal
  variable like ``LECTR_PROXY_WORKER_INDEX``;
- each worker also serves its own metrics on ``<dir>/worker-<index>.sock``
  (:func:`serve_worker`), a server of its own, apart from the public one;
- the parent serves ``GET /metrics`` on ``<dir>/parent.sock`` (:func:`serve_parent`):
  it scrapes every worker's socket at once, each within :data:`SCRAPE_TIMEOUT_S`, and
  adds the samples of the same name and labels up (:func:`sum_families`), plus
  ``lectr_proxy_workers{state="answered"|"missing"}``. A worker that does not answer
  is left out and counted missing; it never fails the scrape;
- a worker's public ``GET /metrics`` (:func:`handle`) asks the parent's socket and
  returns its answer. If the parent does not answer within :data:`PARENT_TIMEOUT_S`,
  it answers its own metrics with a comment saying so, and the workers gauge says
  ``answered`` 1 and ``missing`` N - 1.

Without workers, ``/metrics`` renders the process's own metrics, as it always has.

The request path is untouched: metrics stay plain in-memory integers, turned into text
only when scraped (:mod:`proxy.metrics`); no file is written per request.

A worker the supervisor restarts starts again from zero, so the sums of its counters
drop by what it had counted: Prometheus reads a drop in a counter as a reset, and
``rate()`` and ``increase()`` stay right.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from proxy.metrics import Metrics
from proxy.state import STATE

log = logging.getLogger(__name__)

SOCKET_DIR_ENV = "LECTR_PROXY_METRICS_SOCKET_DIR"
WORKER_COUNT_ENV = "LECTR_PROXY_WORKER_COUNT"
# How long the parent waits for each worker (all are asked at once).
SCRAPE_TIMEOUT_S = 2.0
# How long a worker waits for the parent: longer than one worker's scrape, so a slow
# worker makes the parent leave it out rather than make the asking worker give up.
PARENT_TIMEOUT_S = SCRAPE_TIMEOUT_S + 1.0
CONTENT_TYPE = "text/plain; version=0.0.4"
WORKERS_METRIC = "lectr_proxy_workers"
# A unix socket's path must fit in sockaddr_un (108 bytes on Linux, 104 on macOS).
_MAX_SOCKET_PATH = 100


# --- Summing (pure) -------------------------------------------------------------------


def parse(text: str) -> list[Metric]:
    """Prometheus text exposition format to metric families (ValueError if malformed)."""
    return list(text_string_to_metric_families(text))


def sum_families(expositions: Iterable[Iterable[Metric]]) -> list[Metric]:
    """Add up several processes' metric families: one family per name, one sample per
    sample name and labels, in the order they first appear.

    Counters, gauges and histograms (buckets, ``_sum``, ``_count``) are summed alike;
    ``_created`` samples keep the earliest time; ``info`` and ``stateset`` families keep
    the largest value (they are 0 or 1 in each process). A family keeps the help and
    type of the first process that has it.
    """
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for exposition in expositions:
        for family in exposition:
            if family.name not in families:
                families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
                values[family.name] = {}
            family_type = families[family.name].type
            samples = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key in samples:
                    samples[key] = _merge(family_type, sample.name, samples[key], sample.value)
                else:
                    samples[key] = sample.value
    for name, family in families.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
    return list(families.values())


def _merge(family_type: str, sample_name: str, total: float, value: float) -> float:
    """One more process's ``value`` of a sample into the ``total`` so far."""
    if sample_name.endswith("_created"):
        return min(total, value)
    if family_type in ("info", "stateset"):
        return max(total, value)
    return total + value


def workers_gauge(answered: int, missing: int) -> GaugeMetricFamily:
    """How many workers a scrape covers, and how many it left out."""
    gauge = GaugeMetricFamily(
        WORKERS_METRIC,
        "Proxy worker processes this scrape covers (answered) or left out (missing)",
        labels=("state",),
    )
    gauge.add_metric(("answered",), answered)
    gauge.add_metric(("missing",), missing)
    return gauge


class _Families:
    """A collector that yields fixed families, to render them with prometheus_client."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def render(families: Sequence[Metric]) -> bytes:
    """Metric families to the Prometheus text format (HELP and TYPE lines included)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)


# --- Paths ----------------------------------------------------------------------------


def worker_socket(directory: Path, index: int) -> Path:
    return directory / f"worker-{index}.sock"


def parent_socket(directory: Path) -> Path:
    return directory / "parent.sock"


@contextlib.contextmanager
def private_directory() -> Iterator[Path]:
    """A new directory only this user can enter, for the sockets; removed on exit."""
    path = Path(tempfile.mkdtemp(prefix="lectr-proxy-"))  # mode 0700
    if len(str(worker_socket(path, 9999))) > _MAX_SOCKET_PATH:  # a long TMPDIR
        path.rmdir()
        path = Path(tempfile.mkdtemp(prefix="lectr-proxy-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _socket_dir() -> Path | None:
    value = os.environ.get(SOCKET_DIR_ENV)
    return Path(value) if value else None


def _worker_count() -> int:
    try:
        return max(int(os.environ.get(WORKER_COUNT_ENV, "1")), 1)
    except ValueError:
        return 1


# --- Scraping over unix sockets -------------------------------------------------------


async def _get(path: Path, timeout_s: float) -> str:
    """``GET /metrics`` from the server on the unix socket ``path``: its body."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with (
        aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=str(path)), timeout=timeout
        ) as session,
        session.get("http://lectr/metrics") as response,
    ):
        response.raise_for_status()
        return await response.text()


async def _scrape_worker(directory: Path, index: int) -> list[Metric] | None:
    """One worker's families, or None when it does not answer in time or well."""
    try:
        return parse(await _get(worker_socket(directory, index), SCRAPE_TIMEOUT_S))
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        log.warning("worker %d left out of /metrics: %s", index, type(exc).__name__)
        return None


async def aggregate(directory: Path, count: int) -> bytes:
    """Every worker's metrics, summed, with the workers gauge."""
    scraped = await asyncio.gather(*(_scrape_worker(directory, i) for i in range(count)))
    answered = [families for families in scraped if families is not None]
    summed = sum_families(answered)
    summed.append(workers_gauge(len(answered), count - len(answered)))
    return render(summed)


# --- Servers --------------------------------------------------------------------------


async def _start_unix_server(app: web.Application, path: Path) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        # A socket file left by a worker that crashed is replaced (asyncio and uvloop).
        await web.UnixSite(runner, str(path)).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


async def serve_parent(directory: Path, count: int) -> web.AppRunner:
    """Serve the summed ``GET /metrics`` on ``<directory>/parent.sock``: the caller
    cleans the returned runner up."""

    async def summed(request: web.Request) -> web.Response:
        body = await aggregate(directory, count)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", summed)
    return await _start_unix_server(app, parent_socket(directory))


async def serve_worker(metrics: Metrics, index: int | None) -> web.AppRunner | None:
    """As worker ``index`` of ``--workers N``, serve ``metrics`` on
    ``<dir>/worker-<index>.sock`` for the parent; the caller cleans the returned runner
    up. Not a worker: nothing to serve, None."""
    directory = _socket_dir()
    if directory is None or index is None:
        return None

    async def own(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", own)
    return await _start_unix_server(app, worker_socket(directory, index))


async def handle(request: web.Request) -> web.Response:
    """The public ``GET /metrics``: every worker's sum under ``--workers N``, else (or
    when the parent does not answer) this process's own."""
    metrics = request.app[STATE].metrics
    directory = _socket_dir()
    if directory is None:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})
    try:
        body = (await _get(parent_socket(directory), PARENT_TIMEOUT_S)).encode()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        log.warning("/metrics: the parent did not answer (%s): own only", type(exc).__name__)
        body = _own_only(metrics)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def _own_only(metrics: Metrics) -> bytes:
    """This worker's metrics alone, saying so in a comment and the workers gauge."""
    count = _worker_count()
    comment = b"# lectr: the parent did not answer: this worker's metrics only\n"
    return comment + metrics.render() + render([workers_gauge(1, count - 1)])
