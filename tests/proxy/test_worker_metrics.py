"""``/metrics`` with ``lectr proxy --workers N``: the sum over every worker.

The summing itself with chosen inputs; the parent's scrape and a worker's fallback in
this process; then ``lectr proxy --workers 2`` and ``lectr proxy`` as real processes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aio_pika
import aiohttp
import pytest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from lectr.broker import BrokerNames, delete_topology
from lectr.orgs import IssuedKey
from proxy import worker_metrics
from proxy.metrics import PIPELINE_COUNTERS, PIPELINE_GAUGES, Metrics
from tests.proxy.conftest import PEPPER, RunningProxy, lectr_headers
from tests.support.processes import free_port, start_lectr, wait_for_health
from tests.support.providers import FakeProviders

REQUESTS = 'lectr_proxy_requests_total{provider="openai",status="200"}'


def samples(families: list[Metric]) -> dict[str, float]:
    """Every sample as ``name{label="value",...}`` -> value (labels sorted)."""
    found = {}
    for family in families:
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found


def requests(counts: dict[tuple[str, str], int]) -> CounterMetricFamily:
    family = CounterMetricFamily("lectr_proxy_requests", "Requests", labels=("provider", "status"))
    for labels, count in counts.items():
        family.add_metric(labels, count)
    return family


def latency(counts: list[int], total: float) -> HistogramMetricFamily:
    """A histogram with bounds 0.1 and 1: ``counts`` per bucket (not cumulative)."""
    cumulative = [sum(counts[: i + 1]) for i in range(len(counts))]
    buckets = list(zip(("0.1", "1.0", "+Inf"), cumulative, strict=True))
    return HistogramMetricFamily("latency_seconds", "Latency", buckets=buckets, sum_value=total)


def as_text(*families: Metric) -> list[Metric]:
    """Through the text format and back, as the parent sees a worker's answer."""
    return worker_metrics.parse(worker_metrics.render(list(families)).decode())


# --- Summing --------------------------------------------------------------------------


def test_counters_are_summed_per_label_set() -> None:
    first = as_text(requests({("openai", "200"): 3, ("openai", "429"): 1}))
    second = as_text(requests({("openai", "200"): 4, ("anthropic", "200"): 2}))
    summed = samples(worker_metrics.sum_families([first, second]))
    assert summed == {
        REQUESTS: 7,
        'lectr_proxy_requests_total{provider="openai",status="429"}': 1,
        'lectr_proxy_requests_total{provider="anthropic",status="200"}': 2,
    }


def test_histograms_are_summed_bucket_by_bucket() -> None:
    first = as_text(latency([1, 2, 0], 1.5))
    second = as_text(latency([0, 1, 3], 9.25))
    summed = samples(worker_metrics.sum_families([first, second]))
    assert summed == {
        'latency_seconds_bucket{le="0.1"}': 1,
        'latency_seconds_bucket{le="1.0"}': 4,
        'latency_seconds_bucket{le="+Inf"}': 7,
        "latency_seconds_count": 7,
        "latency_seconds_sum": 10.75,
    }


def test_gauges_are_summed_and_a_family_of_one_worker_is_kept() -> None:
    depth = "lectr_proxy_event_buffer_depth"
    first = as_text(GaugeMetricFamily(depth, "Depth", value=5))
    second = as_text(
        GaugeMetricFamily(depth, "Depth", value=2), GaugeMetricFamily("only_here", "One", value=9)
    )
    assert samples(worker_metrics.sum_families([first, second])) == {depth: 7, "only_here": 9}


def test_created_keeps_the_earliest_and_info_is_not_multiplied() -> None:
    first, second = Metric("jobs", "Jobs", "counter"), Metric("jobs", "Jobs", "counter")
    first.add_sample("jobs_total", {}, 1)
    first.add_sample("jobs_created", {}, 200.0)
    second.add_sample("jobs_total", {}, 2)
    second.add_sample("jobs_created", {}, 100.0)
    info = [Metric("build", "Build", "info") for _ in range(2)]
    for family in info:
        family.add_sample("build_info", {"version": "1"}, 1)
    summed = samples(worker_metrics.sum_families([[first, info[0]], [second, info[1]]]))
    assert summed == {"jobs_total": 3, "jobs_created": 100.0, 'build_info{version="1"}': 1}


def test_the_sum_renders_with_help_and_type_and_the_workers_gauge() -> None:
    families = worker_metrics.sum_families([as_text(requests({("openai", "200"): 3}))] * 2)
    text = worker_metrics.render([*families, worker_metrics.workers_gauge(2, 0)]).decode()
    assert "# HELP lectr_proxy_requests_total Requests\n" in text
    assert "# TYPE lectr_proxy_requests_total counter\n" in text
    assert f"{REQUESTS} 6.0\n" in text
    assert 'lectr_proxy_workers{state="answered"} 2.0\n' in text
    assert 'lectr_proxy_workers{state="missing"} 0.0\n' in text


def test_nothing_to_sum_is_nothing() -> None:
    assert worker_metrics.sum_families([]) == []


# --- The parent's scrape and a worker's fallback, in this process ---------------------


def pipeline_counters() -> dict[str, int]:
    return dict.fromkeys((*PIPELINE_GAUGES, *PIPELINE_COUNTERS), 0)


@pytest.fixture
def socket_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with worker_metrics.private_directory() as directory:
        assert directory.stat().st_mode & 0o777 == 0o700
        monkeypatch.setenv(worker_metrics.SOCKET_DIR_ENV, str(directory))
        monkeypatch.setenv(worker_metrics.WORKER_COUNT_ENV, "3")
        yield directory
    assert not directory.exists()


async def test_a_worker_that_does_not_answer_is_counted_missing(socket_dir: Path) -> None:
    metrics = Metrics(pipeline=pipeline_counters)
    for _ in range(5):
        metrics.request("openai", 200, 0.0002)
    server = await worker_metrics.serve_worker(metrics, 0)
    assert server is not None
    try:
        # Worker 1 has no socket; worker 2's socket accepts but never answers.
        writers: list[asyncio.StreamWriter] = []
        silent = await asyncio.start_unix_server(
            lambda _, writer: writers.append(writer),
            path=worker_metrics.worker_socket(socket_dir, 2),
        )
        try:
            started = asyncio.get_running_loop().time()
            text = (await worker_metrics.aggregate(socket_dir, 3)).decode()
            took = asyncio.get_running_loop().time() - started
        finally:
            silent.close()
            for writer in writers:
                writer.close()
                await writer.wait_closed()
            await silent.wait_closed()
    finally:
        await server.cleanup()
    found = samples(worker_metrics.parse(text))
    assert found[REQUESTS] == 5
    assert found['lectr_proxy_workers{state="answered"}'] == 1
    assert found['lectr_proxy_workers{state="missing"}'] == 2
    assert took < worker_metrics.SCRAPE_TIMEOUT_S + 1  # the silent one is waited on once


async def test_a_worker_whose_parent_does_not_answer_serves_its_own(
    socket_dir: Path, proxy: RunningProxy, org: IssuedKey
) -> None:
    proxy.state.metrics.request("openai", 200, None)
    status, text = await proxy.get("/metrics")  # no parent.sock in the directory
    assert status == 200
    assert text.startswith("# lectr: the parent did not answer: this worker's metrics only\n")
    found = samples(worker_metrics.parse(text))
    assert found[REQUESTS] == 1
    assert found['lectr_proxy_workers{state="answered"}'] == 1
    assert found['lectr_proxy_workers{state="missing"}'] == 2


# --- Real processes -------------------------------------------------------------------


class Proxy:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.url = f"http://127.0.0.1:{env['LECTR_PROXY_PORT']}"
        self.process = start_lectr(["proxy", *args], env)
        self.stopped: tuple[int, str] | None = None

    def stop(self, timeout_s: float = 30.0) -> tuple[int, str]:
        """SIGTERM, then wait: (exit code, stderr). Once stopped, the same again."""
        if self.stopped is None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            _, stderr = self.process.communicate(timeout=timeout_s)
            self.stopped = self.process.returncode, stderr
        return self.stopped


@pytest.fixture
async def start(
    lectr_env: dict[str, str],
    broker_names: BrokerNames,
    amqp_url: str,
    fake: FakeProviders,
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Proxy]]:
    """Start ``lectr proxy ARGS`` on a free port; stopped with SIGTERM afterwards."""
    names = BrokerNames(f"{broker_names.prefix}_{uuid.uuid4().hex[:8]}")
    env = {
        **lectr_env,
        "LECTR_BROKER_PREFIX": names.prefix,
        "LECTR_KEY_PEPPER": PEPPER,
        "LECTR_PROXY_PORT": str(free_port()),
        "LECTR_INSTANCE_NAME": "metrics",
        "LECTR_PROXY_SPOOL_DIR": str(tmp_path / "spool"),
        **fake.env(),
    }
    started: list[Proxy] = []

    def start_process(*args: str) -> Proxy:
        started.append(Proxy(env, *args))
        return started[-1]

    yield start_process
    for proxy in started:
        code, stderr = await asyncio.to_thread(proxy.stop)
        assert code == 0, stderr
    connection = await aio_pika.connect(amqp_url)
    async with connection, connection.channel() as channel:
        await delete_topology(channel, names)


async def chat_then_health(url: str, org: IssuedKey) -> str:
    """One chat completion on a new connection, then ``/health`` on the same one: the
    instance that served the chat."""
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.post(
            f"{url}/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            headers=lectr_headers(org),
        ) as response:
            await response.read()
            assert response.status == 200
        async with session.get(f"{url}/health") as response:
            return (await response.json())["instance"]


async def scrape(url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
        assert response.status == 200
        return samples(worker_metrics.parse(await response.text()))


@pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT balancing is Linux's")
async def test_metrics_with_workers_are_the_sum_over_all_workers(
    start: Callable[..., Proxy], org: IssuedKey
) -> None:
    proxy = start("--workers", "2")
    await wait_for_health(proxy.url, proxy.process, 20)
    served: dict[str, int] = {}
    while len(served) < 2 or sum(served.values()) < 40:  # both workers served some
        assert sum(served.values()) < 200, f"only {served} served"
        instance = await chat_then_health(proxy.url, org)
        served[instance] = served.get(instance, 0) + 1
    assert set(served) == {"metrics-w0", "metrics-w1"}
    sent = sum(served.values())

    for _ in range(8):  # whichever worker each scrape reaches
        found = await scrape(proxy.url)
        assert found[REQUESTS] == sent, found
        assert found['lectr_proxy_workers{state="answered"}'] == 2
        assert found['lectr_proxy_workers{state="missing"}'] == 0
        assert found["lectr_proxy_added_latency_seconds_count"] == sent

    # The sockets' directory is private to the user, and removed at exit.
    pid = worker_pids(proxy.process.pid)["metrics-w0"]
    directory = Path(environ_of(pid)[worker_metrics.SOCKET_DIR_ENV])
    assert mode_of(directory) == 0o700
    code, stderr = await asyncio.to_thread(proxy.stop)
    assert code == 0, stderr
    assert mode_of(directory) is None


async def test_a_single_proxy_serves_its_own_metrics(
    start: Callable[..., Proxy], org: IssuedKey
) -> None:
    proxy = start()
    await wait_for_health(proxy.url, proxy.process, 20)
    for _ in range(3):
        assert await chat_then_health(proxy.url, org) == "metrics"
    found = await scrape(proxy.url)
    assert found[REQUESTS] == 3
    assert not any(name.startswith("lectr_proxy_workers") for name in found)


def mode_of(path: Path) -> int | None:
    """A file's permission bits; None when it does not exist."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return None


def environ_of(pid: int) -> dict[str, str]:
    """A process's environment (Linux's /proc)."""
    entries = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


def worker_pids(parent: int) -> dict[str, int]:
    """The parent's worker processes: instance name -> pid (Linux's /proc)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return {environ_of(pid)["LECTR_INSTANCE_NAME"]: pid for pid in map(int, children)}


@pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT balancing is Linux's")
async def test_a_dead_worker_is_counted_missing_and_its_restart_starts_from_zero(
    start: Callable[..., Proxy], org: IssuedKey
) -> None:
    proxy = start("--workers", "2")
    await wait_for_health(proxy.url, proxy.process, 20)
    served: dict[str, int] = {}
    while len(served) < 2:
        assert sum(served.values()) < 200, f"only {served} served"
        instance = await chat_then_health(proxy.url, org)
        served[instance] = served.get(instance, 0) + 1

    os.kill(worker_pids(proxy.process.pid)["metrics-w0"], signal.SIGKILL)
    states: list[tuple[float, float]] = []
    deadline = asyncio.get_running_loop().time() + 30
    while not states or states[-1] != (2, 0):  # until the restarted worker answers
        assert asyncio.get_running_loop().time() < deadline, states
        try:
            found = await scrape(proxy.url)
        except aiohttp.ClientConnectionError:
            continue  # a connection the kernel gave to the dead worker's socket
        answered = found['lectr_proxy_workers{state="answered"}']
        states.append((answered, found['lectr_proxy_workers{state="missing"}']))
        # The dead worker's counts are gone with it; the survivor's are all there.
        assert found[REQUESTS] == served["metrics-w1"], found
        await asyncio.sleep(0.05)
    assert (1, 1) in states
