"""How much the proxy adds over calling the upstream directly, next to a Python floor.

Run from the repository root, with the project's virtualenv:

    .venv/bin/python bench/proxy_overhead.py [--duration S] [--warmup S] [--rounds N]
        [--redis URL] [--redis-timeout-ms MS]

It needs two CPU cores, Debian's ``nginx-light``, ``wrk`` and ``util-linux`` (taskset)
(``apt-get install -y nginx-light wrk``), and the local Postgres, RabbitMQ and Redis
the tests use (``--postgres`` / ``--amqp`` / ``--redis`` to point elsewhere). It creates
its own database (``lectr_bench_<random>``) and broker prefix, and removes both, its
processes and its temporary directory when it ends, also on failure or Ctrl-C. The
default run takes about two minutes and a half on an idle machine.

The upstream is nginx answering every ``POST /v1/chat/completions`` at once with a fixed
completion (usage included). The load generator is wrk. The server under test (the
proxy, or the pass-through) runs pinned to the first core; wrk and nginx share the
second, so the process being measured has a core to itself and the load side costs it
nothing. The exceptions are ``--workers 2`` and its reference, two pass-through
processes: both may run on both cores. Redis runs as a system service and cannot be
pinned here: it shares the cores with everything else, in practice mostly the load
side's, so under load its answers wait behind wrk and nginx.

The floor is a minimal aiohttp pass-through defined in this file (uvloop, one shared
``ClientSession``, no access log): it reads the body, forwards it to nginx and returns
the answer with its status. It is what any aiohttp proxy costs on this machine, so the
ratios to it compare across machines.

Every server side is started first (each on its own port; an idle one costs nothing),
then each round measures, after a warm-up each time:

* latency at 1 connection (p50 and p99) to nginx directly, through the pass-through and
  through the proxy (events on); "added" is the difference to direct;
* requests/s at 64 connections to each of those, to the proxy with events off, to
  ``lectr proxy --workers 2`` and to two pass-through processes, and to the proxy with
  its access log off and with ``LECTR_PROXY_ACCESS_LOG=all`` (both at log level INFO,
  written to a file, so the cost of a line per request shows);
* both, latency and requests/s, for two more proxies (events on) that differ only in
  where the organisation's requests-per-minute limit is counted: "rpm limit counted
  locally" (no ``LECTR_REDIS_URL``) and "rpm limit in Redis" (``LECTR_REDIS_URL`` =
  ``--redis``, with ``LECTR_REDIS_TIMEOUT_MS`` = ``--redis-timeout-ms``, by default the
  proxy's own 5 ms). The added p50 of the Redis check is the difference of their p50s.

The limit is an organisation setting, so it is shared by every row: the bench org's
``rate_limit_rpm`` is set to 1,000,000,000 for the whole run (nothing is refused, but a
limit must be set: without one no limiter, local or Redis, is asked at all). So every
``lectr proxy`` row pays the local check, a few dict operations per request (a token
bucket in :class:`proxy.limits.RateLimiter`), which is noise next to the rest of the
request; the first of the two rows is therefore a twin of "lectr proxy, events on",
run as its own process so that the pair is measured side by side.

The Redis proxy's ``/metrics`` is scraped around each of its runs and at the end:
``lectr_proxy_redis_fallbacks_total`` counts the checks that were not answered within
the timeout (after three in a row the proxy stops asking Redis until a probe answers,
every 0.5 s) and so were counted locally. They are printed, with their share at 1 and
at 64 connections, and do not fail the run: at 64 connections on a loaded two-core
machine Redis shares a core with wrk and nginx and now and then answers a 5 ms check
too late. Fallbacks make the Redis row partly a local one, so its ratios then
understate Redis's cost; from 1 % on a warning says so, and ``--redis-timeout-ms 50``
measures the check itself.

Rows are measured back to back and round after round, so background load that comes
and goes hits them alike; every figure is the median over the rounds. It then prints a
table, the ratios and one PASS/MISS per target. Targets: added p50 within 1.3x of the
pass-through's, at least 85 % of its requests/s, events on within 5 % of events off,
``--workers 2`` gaining at least 90 % of what a second pass-through process gains
(the load side shares the second core, so 2.0x is out of reach here), and the rpm limit
in Redis keeping at least 90 % of the local row's requests/s. The Redis check costs the
proxy one script call (``EVALSHA``) per batch of checks (one batch out at a time, so
checks made meanwhile share the next) and a future per request. Measured on a 2-core
machine: 0.95-0.97x the local row's requests/s and 1.02-1.03x its CPU per request,
+0.5-0.6 ms at the median with one connection (a lone check, one round trip, took
about 0.3 ms with the machine otherwise idle), and 0.4 % of the checks at 64
connections falling back at 5 ms (none at 50 ms). When 1 % or more of the checks at 64
connections fell back, the target's line says so: its PASS then says little.

Any failed request (wrk's socket errors, responses with status 400 or above) stops the
run with an error, and so do fewer events published than requests served. A missed
target does not: the exit status is 0 unless the set-up failed or the run went wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
CHAT_PATH = "/v1/chat/completions"
REQUEST_BODY = '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 9,
            "completion_tokens": 9,
            "total_tokens": 18,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    },
    separators=(",", ":"),
)
# Tool -> the Debian package that has it.
TOOLS = {"nginx": "nginx-light", "wrk": "wrk", "taskset": "util-linux"}
LOAD_CONNECTIONS = 64
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0

# Targets.
ADDED_P50_MAX = 1.3  # proxy added p50 / pass-through added p50
RPS_MIN = 0.85  # proxy requests/s / pass-through requests/s
EVENTS_SPREAD_MAX = 0.05  # |events on / events off - 1|
WORKERS_GAIN_MIN = 0.9  # (proxy 2 workers / 1) / (pass-through 2 processes / 1)
REDIS_RPS_MIN = 0.9  # rpm limit in Redis req/s / rpm limit counted locally req/s

# Row names.
DIRECT = "direct to nginx"
FLOOR = "aiohttp pass-through"
PROXY = "lectr proxy, events on"
PROXY_OFF = "lectr proxy, events off"
PROXY_2 = "lectr proxy --workers 2"
FLOOR_2 = "pass-through, 2 processes"
LOG_OFF = "lectr proxy, access log off"
LOG_ALL = "lectr proxy, access log all"
RPM_LOCAL = "lectr proxy, rpm limit counted locally"
RPM_REDIS = "lectr proxy, rpm limit in Redis"

# The organisation's requests-per-minute limit for the whole run: so high that nothing is
# refused, but set, so that every request is checked (no limit: no check at all).
RPM_LIMIT = 1_000_000_000


class SetupError(RuntimeError):
    """The benchmark cannot run or a request failed: the message says what to do."""


# --- the pass-through (the floor) ---------------------------------------------------------


async def serve_passthrough(port: int, upstream: str) -> None:
    """Forward every request to ``upstream`` and answer with its status and body."""
    import aiohttp
    from aiohttp import web

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def forward(request: web.Request) -> web.Response:
            body = await request.read()
            async with session.request(
                request.method,
                upstream + request.path_qs,
                data=body,
                headers={"Content-Type": request.content_type},
            ) as answer:
                payload = await answer.read()
                return web.Response(
                    body=payload, status=answer.status, content_type=answer.content_type
                )

        async def ready(request: web.Request) -> web.Response:
            return web.json_response({"pid": os.getpid()})

        app = web.Application()
        app.router.add_get("/ready", ready)
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, HOST, port, reuse_port=True, backlog=1024).start()
        await stop.wait()
        await runner.cleanup()


def run_passthrough(port: int, upstream: str) -> int:
    import uvloop

    uvloop.run(serve_passthrough(port, upstream))
    return 0


# --- processes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cores:
    server: int  # the proxy or pass-through under test
    load: int  # wrk and nginx

    @property
    def both(self) -> str:
        return f"{self.server},{self.load}"


def pick_cores() -> Cores:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SetupError(f"this benchmark needs two CPU cores, this process may use {cores}")
    return Cores(server=cores[0], load=cores[1])


def find_tools() -> dict[str, str]:
    search = os.pathsep.join((os.environ.get("PATH", ""), "/usr/sbin", "/sbin"))
    found = {tool: shutil.which(tool, path=search) for tool in TOOLS}
    missing = [tool for tool, path in found.items() if path is None]
    if missing:
        packages = " ".join(sorted({TOOLS[tool] for tool in missing}))
        raise SetupError(
            f"missing {', '.join(missing)}: install with `apt-get install -y {packages}`"
        )
    return {tool: path for tool, path in found.items() if path is not None}


def accepts(port: int) -> bool:
    with socket.create_connection((HOST, port), timeout=1):
        return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Server:
    """A child process in its own session, its output in a log file."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log_path = log
        self._log: IO[bytes] = log.open("wb")
        self.process = subprocess.Popen(
            argv,
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check_running(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise SetupError(f"{self.name} exited with status {code}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(f"  | {line}" for line in text[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"warning: {self.name} ignored SIGTERM; killing it", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):  # anything left in its session
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._log.close()


@contextlib.contextmanager
def running(name: str, argv: Sequence[str], env: dict[str, str], log: Path) -> Iterator[Server]:
    server = Server(name, argv, env, log)
    try:
        yield server
    finally:
        server.stop()


def wait_until(server: Server, ready: Any, what: str) -> None:
    """Poll ``ready()`` until it is true; fail if ``server`` dies or it takes too long."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        server.check_running()
        with contextlib.suppress(OSError, ValueError):
            if ready():
                return
        if time.monotonic() > deadline:
            raise SetupError(f"{server.name}: no {what} after {START_TIMEOUT_S:.0f} s")
        time.sleep(0.05)


def get_json(url: str) -> dict[str, Any]:
    """GET ``url`` on a new connection; the JSON body, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return dict(json.load(response))
    except urllib.error.HTTPError as exc:
        return dict(json.load(exc))


def wait_for_distinct(server: Server, url: str, field_name: str, count: int) -> None:
    """Wait until new connections to ``url`` have reached ``count`` different processes
    (told apart by ``field_name`` in the JSON answer)."""
    seen: set[str] = set()

    def ready() -> bool:
        body = get_json(url)
        if body.get("status", "ok") == "ok":
            seen.add(str(body[field_name]))
        return len(seen) >= count

    wait_until(server, ready, f"{count} ready process(es) at {url}")


def post_once(url: str, key: str) -> None:
    """One request through ``url``: it must answer 200 with the fixed completion."""
    request = urllib.request.Request(
        url, data=REQUEST_BODY.encode(), headers=request_headers(key), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        raise SetupError(f"POST {url} answered {exc.code}: {exc.read()[:500]!r}") from None
    if body.get("usage") is None:
        raise SetupError(f"POST {url} answered something else: {body!r:.500}")


def request_headers(key: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Authorization": "Bearer sk-bench",
        "X-Lectr-Key": key,
    }


# --- nginx, the upstream --------------------------------------------------------------------


def nginx_config(root: Path, port: int) -> str:
    temp_paths = "\n".join(
        f"    {kind}_temp_path {root / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
daemon off;
master_process off;
worker_processes 1;
pid {root / "nginx.pid"};
error_log {root / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
{temp_paths}
    server {{
        listen {HOST}:{port} backlog=1024;
        location = {CHAT_PATH} {{
            default_type application/json;
            return 200 '{COMPLETION}';
        }}
    }}
}}
"""


@contextlib.contextmanager
def nginx(tools: dict[str, str], tmp: Path, core: int) -> Iterator[str]:
    """nginx on ``core``, answering the chat path; yields its base URL."""
    root = tmp / "nginx"
    root.mkdir()
    port = free_port()
    config = root / "nginx.conf"
    config.write_text(nginx_config(root, port))
    argv = [tools["taskset"], "-c", str(core), tools["nginx"]]
    argv += ["-p", str(root), "-c", str(config), "-e", str(root / "error.log")]
    with running("nginx", argv, dict(os.environ), tmp / "nginx.log") as server:
        base = f"http://{HOST}:{port}"
        wait_until(server, lambda: accepts(port), "listening port")
        post_once(base + CHAT_PATH, "none")
        yield base


# --- wrk, the load ----------------------------------------------------------------------------

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
wrk.headers["X-Lectr-Key"] = "{key}"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Sample:
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    # CPU seconds the server process used during the run (single-process servers only).
    cpu_s: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s


@dataclass
class Wrk:
    tool: str
    taskset: str
    script: Path
    core: int
    warmup_s: int
    duration_s: int
    # Requests completed so far by URL, warm-ups included.
    sent: Counter[str] = field(default_factory=Counter)

    def measure(self, url: str, connections: int, pid: int | None = None) -> Sample:
        """A warm-up, then the measured run (and the CPU time ``pid`` used during it)."""
        if self.warmup_s > 0:
            self._run(url, connections, self.warmup_s)
        before = cpu_seconds(pid)
        sample = self._run(url, connections, self.duration_s)
        if pid is None:
            return sample
        return dataclasses.replace(sample, cpu_s=cpu_seconds(pid) - before)

    def _run(self, url: str, connections: int, seconds: int) -> Sample:
        argv = [self.taskset, "-c", str(self.core), self.tool, "-t1", f"-c{connections}"]
        argv += [f"-d{seconds}s", "--timeout", "5s", "-s", str(self.script), url]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if done.returncode != 0 or line is None:
            raise SetupError(f"wrk failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        numbers = [float(word) for word in line.split()[1:]]
        requests, duration_us, connect, read, write, status, timeout, p50, p99 = numbers
        self.sent[url] += int(requests)
        failed = {"connect": connect, "read": read, "write": write, "timeout": timeout}
        failed = {kind: int(count) for kind, count in failed.items() if count}
        if status or failed:
            raise SetupError(
                f"requests to {url} failed: {int(status)} answered with status >= 400, "
                f"socket errors {failed or 'none'}, out of {int(requests)}"
            )
        return Sample(int(requests), duration_us / 1e6, p50 / 1000.0, p99 / 1000.0)


def cpu_seconds(pid: int | None) -> float:
    """User plus system CPU time of process ``pid`` so far (0 without one)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_wrk_script(tmp: Path, key: str) -> Path:
    path = tmp / "post.lua"
    path.write_text(WRK_SCRIPT.format(body=REQUEST_BODY, key=key))
    return path


# --- Lectr: database, broker, key, proxy ----------------------------------------------------


@dataclass(frozen=True)
class Lectr:
    env: dict[str, str]
    database_url: str
    amqp_url: str
    prefix: str


def lectr_settings(postgres: str, amqp: str, upstream: str) -> Lectr:
    tag = f"lectr_bench_{secrets.token_hex(4)}"
    database_url = f"{postgres.rstrip('/')}/{tag}"
    env = {name: value for name, value in os.environ.items() if not name.startswith("LECTR_")}
    env.update(
        LECTR_DATABASE_URL=database_url,
        LECTR_AMQP_URL=amqp,
        LECTR_BROKER_PREFIX=tag,
        LECTR_KEY_PEPPER=secrets.token_urlsafe(24),
        LECTR_HOST=HOST,
        LECTR_OPENAI_BASE_URL=f"{upstream}/v1",
        LECTR_LOG_LEVEL="WARNING",
    )
    return Lectr(env, database_url, amqp, tag)


def lectr_command(lectr: Lectr, *args: str) -> str:
    argv = [sys.executable, "-m", "lectr", *args]
    done = subprocess.run(argv, env=lectr.env, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SetupError(f"`lectr {' '.join(args)}` failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def create_org_key(lectr: Lectr) -> str:
    """Migrate, create the organisation with its requests-per-minute limit (RPM_LIMIT),
    and return a key for it."""
    lectr_command(lectr, "migrate")
    issued = json.loads(lectr_command(lectr, "org", "create", "bench", "--json"))
    asyncio.run(_set_rpm_limit(lectr.database_url, RPM_LIMIT))
    return str(issued["key"])


async def _set_rpm_limit(database_url: str, rpm: int) -> None:
    import asyncpg

    from lectr.db import asyncpg_dsn

    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        updated = await connection.execute(
            "UPDATE organizations SET rate_limit_rpm = $1 WHERE name = 'bench'", rpm
        )
    finally:
        await connection.close()
    if updated != "UPDATE 1":
        raise SetupError(f"could not set the organisation's rate_limit_rpm: {updated}")


def check_redis(url: str) -> None:
    """Fail early, with the fix, when Redis does not answer at ``url``."""
    from redis import Redis
    from redis.exceptions import RedisError

    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except RedisError as exc:
        raise SetupError(
            f"Redis at {url} does not answer ({exc}): start it or pass --redis"
        ) from None
    finally:
        client.close()


async def _delete_broker_names(amqp_url: str, prefix: str) -> None:
    import aio_pika

    from lectr.broker import BrokerNames, delete_topology

    connection = await aio_pika.connect(amqp_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        await delete_topology(channel, BrokerNames(prefix))


def remove_lectr_data(lectr: Lectr) -> None:
    """Drop the database and delete the broker names; warn (do not fail) on trouble."""
    from lectr.db import drop_database

    for what, work in (
        (f"database {lectr.prefix}", lambda: drop_database(lectr.database_url)),
        (
            f"broker names {lectr.prefix}.*",
            lambda: _delete_broker_names(lectr.amqp_url, lectr.prefix),
        ),
    ):
        try:
            asyncio.run(work())
        except Exception as exc:
            print(f"warning: could not remove {what}: {exc}", file=sys.stderr)


class Target(NamedTuple):
    url: str
    # The server's process, when it is one process (for its CPU time per request).
    pid: int | None


def proxy_log(tmp: Path, workers: int, events: bool, access_log: str | None, tag: str = "") -> Path:
    access = f"-access-{access_log}" if access_log else ""
    tag = f"-{tag}" if tag else ""
    return tmp / f"proxy-w{workers}-{'on' if events else 'off'}{access}{tag}.log"


@contextlib.contextmanager
def proxy(
    lectr: Lectr,
    tmp: Path,
    taskset: str,
    cores: str,
    *,
    workers: int,
    events: bool,
    access_log: str | None = None,
    redis: str | None = None,
    redis_timeout_ms: float | None = None,
    tag: str = "",
) -> Iterator[Target]:
    """``lectr proxy`` on ``cores``; yields its base URL (and, with one worker, its pid)
    once every worker is ready. With ``access_log`` it logs at INFO, so that the access
    log's lines are written (the other rows log warnings only). With ``redis`` it checks
    the organisation's limits there (``LECTR_REDIS_URL``), and is ready only once it
    has connected. ``tag`` tells apart the log files of proxies otherwise alike."""
    port = free_port()
    env = {**lectr.env, "LECTR_PROXY_PORT": str(port)}
    env["LECTR_PROXY_RECORD_EVENTS"] = "on" if events else "off"
    if access_log:
        env.update(LECTR_PROXY_ACCESS_LOG=access_log, LECTR_LOG_LEVEL="INFO")
    if redis:
        env["LECTR_REDIS_URL"] = redis
    if redis_timeout_ms is not None:
        env["LECTR_REDIS_TIMEOUT_MS"] = f"{redis_timeout_ms:g}"
    argv = [taskset, "-c", cores, sys.executable, "-m", "lectr", "proxy"]
    argv += ["--workers", str(workers)]
    name = f"lectr proxy (workers {workers}, events {'on' if events else 'off'}"
    name += f", {tag})" if tag else ")"
    log = proxy_log(tmp, workers, events, access_log, tag)
    with running(name, argv, env, log) as server:
        url = f"http://{HOST}:{port}"
        # /health says "ok" only once Redis answers too (else "degraded").
        wait_for_distinct(server, f"{url}/health", "instance", workers)
        yield Target(url, server.process.pid if workers == 1 else None)
        server.check_running()


class RedisCounts(NamedTuple):
    fallbacks: dict[str, int]  # lectr_proxy_redis_fallbacks_total by check
    requests: int  # lectr_proxy_requests_total, summed


def redis_counts(url: str) -> RedisCounts:
    """The Redis fallbacks and requests a proxy counted, scraped from its /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    fallbacks: dict[str, int] = {}
    requests = 0
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        if name == "lectr_proxy_redis_fallbacks_total":
            labels, value = rest.split("}", 1)
            check = labels.partition('check="')[2].partition('"')[0]
            fallbacks[check] = int(float(value))
        elif name == "lectr_proxy_requests_total":
            requests += int(float(rest.split("}", 1)[1]))
    if not fallbacks:
        raise SetupError(f"{url}/metrics has no lectr_proxy_redis_fallbacks_total: no Redis?")
    return RedisCounts(fallbacks, requests)


def proxy_events(url: str) -> dict[str, int]:
    """The proxy's event counters, once its buffer is empty (or after 10 s)."""
    deadline = time.monotonic() + 10.0
    health = get_json(f"{url}/health")
    while health["buffer_depth"] and time.monotonic() < deadline:
        time.sleep(0.1)
        health = get_json(f"{url}/health")
    return {name: int(health[name]) for name in ("events_published", "events_dropped")} | {
        "buffer_depth": int(health["buffer_depth"])
    }


@contextlib.contextmanager
def passthrough(
    upstream: str, tmp: Path, taskset: str, cores: str, processes: int
) -> Iterator[Target]:
    """``processes`` pass-through servers sharing one port on ``cores``; yields the URL
    (and, for one process, its pid)."""
    port = free_port()
    argv = [taskset, "-c", cores, sys.executable, str(Path(__file__).resolve())]
    argv += ["--serve-passthrough", str(port), "--upstream", upstream]
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(
                running(f"pass-through {index}", argv, dict(os.environ), tmp / f"pt{index}.log")
            )
            for index in range(processes)
        ]
        url = f"http://{HOST}:{port}"
        wait_for_distinct(servers[0], f"{url}/ready", "pid", processes)
        yield Target(url, servers[0].process.pid if processes == 1 else None)
        for server in servers:
            server.check_running()


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Fallbacks:
    """Redis checks that fell back to the local limiter, out of requests served."""

    fallbacks: int = 0
    requests: int = 0

    @property
    def share(self) -> float:
        return self.fallbacks / self.requests if self.requests else 0.0


LATENCY_ROWS = (DIRECT, FLOOR, PROXY, RPM_LOCAL, RPM_REDIS)
LOAD_ROWS = (
    DIRECT, FLOOR, PROXY, PROXY_OFF, PROXY_2, FLOOR_2, LOG_OFF, LOG_ALL, RPM_LOCAL, RPM_REDIS
)  # fmt: skip


@dataclass
class Results:
    # Row -> one sample per round, at 1 connection and at LOAD_CONNECTIONS.
    latency: dict[str, list[Sample]] = field(default_factory=dict)
    load: dict[str, list[Sample]] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    proxy_sent: int = 0  # requests wrk completed through the events-on proxy
    access_lines: int = 0  # lines the access-log-all proxy wrote
    access_sent: int = 0  # requests wrk completed through it
    # lectr_proxy_redis_fallbacks_total by check, of the rpm-limit-in-Redis proxy, at
    # the end; and its fallbacks and requests during the runs at 1 and 64 connections.
    fallbacks: dict[str, int] = field(default_factory=dict)
    redis_requests: int = 0  # requests it counted (lectr_proxy_requests_total)
    fallbacks_latency: Fallbacks = field(default_factory=Fallbacks)
    fallbacks_load: Fallbacks = field(default_factory=Fallbacks)

    def p50(self, name: str) -> float:
        return statistics.median(sample.p50_ms for sample in self.latency[name])

    def p99(self, name: str) -> float:
        return statistics.median(sample.p99_ms for sample in self.latency[name])

    def rps(self, name: str) -> float:
        return statistics.median(sample.rps for sample in self.load[name])

    def cpu_us(self, name: str) -> float | None:
        """Median CPU microseconds the server spent per request, if it was measured."""
        samples = self.load[name]
        if any(sample.cpu_s is None for sample in samples):
            return None
        return statistics.median(sample.cpu_s / sample.requests * 1e6 for sample in samples)

    def rps_spread(self, name: str) -> float:
        """(highest - lowest) / median requests/s over the rounds."""
        values = [sample.rps for sample in self.load[name]]
        return (max(values) - min(values)) / statistics.median(values)


@dataclass(frozen=True)
class Bench:
    tools: dict[str, str]
    cores: Cores
    tmp: Path
    upstream: str
    lectr: Lectr
    wrk: Wrk
    rounds: int
    load_before: float
    redis: str
    redis_timeout_ms: float

    def start_all(self, stack: contextlib.ExitStack, key: str) -> dict[str, Target]:
        """Every server side, each on its own port (idle ones cost nothing)."""
        one, both, taskset = str(self.cores.server), self.cores.both, self.tools["taskset"]
        servers = {
            FLOOR: passthrough(self.upstream, self.tmp, taskset, one, 1),
            FLOOR_2: passthrough(self.upstream, self.tmp, taskset, both, 2),
            PROXY: proxy(self.lectr, self.tmp, taskset, one, workers=1, events=True),
            PROXY_OFF: proxy(self.lectr, self.tmp, taskset, one, workers=1, events=False),
            PROXY_2: proxy(self.lectr, self.tmp, taskset, both, workers=2, events=True),
            LOG_OFF: proxy(
                self.lectr, self.tmp, taskset, one, workers=1, events=True, access_log="off"
            ),
            LOG_ALL: proxy(
                self.lectr, self.tmp, taskset, one, workers=1, events=True, access_log="all"
            ),
            RPM_LOCAL: proxy(
                self.lectr, self.tmp, taskset, one, workers=1, events=True, tag="rpm-local"
            ),
            RPM_REDIS: proxy(
                self.lectr,
                self.tmp,
                taskset,
                one,
                workers=1,
                events=True,
                redis=self.redis,
                redis_timeout_ms=self.redis_timeout_ms,
                tag="rpm-redis",
            ),
        }
        targets = {DIRECT: Target(self.upstream, None)}
        for name, server in servers.items():
            targets[name] = stack.enter_context(server)
            post_once(targets[name].url + CHAT_PATH, key)
        return targets

    def round(self, index: int, targets: dict[str, Target], results: Results) -> None:
        print(f"  round {index + 1} of {self.rounds}:", end="", flush=True)
        for name in LATENCY_ROWS:
            with self.fallbacks(name, targets[name].url, results.fallbacks_latency):
                sample = self.wrk.measure(targets[name].url + CHAT_PATH, 1)
            results.latency.setdefault(name, []).append(sample)
            print(".", end="", flush=True)
        for name in LOAD_ROWS:
            url, pid = targets[name]
            with self.fallbacks(name, url, results.fallbacks_load):
                sample = self.wrk.measure(url + CHAT_PATH, LOAD_CONNECTIONS, pid)
            results.load.setdefault(name, []).append(sample)
            print(".", end="", flush=True)
        print(f" proxy {results.load[PROXY][-1].rps:,.0f} req/s", flush=True)

    @contextlib.contextmanager
    def fallbacks(self, name: str, url: str, counts: Fallbacks) -> Iterator[None]:
        """Add the Redis fallbacks and the requests the proxy counted (warm-up included)
        during the run inside to ``counts``; only for the rpm-limit-in-Redis row."""
        if name != RPM_REDIS:
            yield
            return
        before = redis_counts(url)
        yield
        after = redis_counts(url)
        counts.fallbacks += sum(after.fallbacks.values()) - sum(before.fallbacks.values())
        counts.requests += after.requests - before.requests


def measure(bench: Bench, key: str) -> Results:
    """Every row once per round, round after round, so drifting background load on the
    machine hits every row alike; each figure is the median over the rounds."""
    results = Results()
    with contextlib.ExitStack() as stack:
        targets = bench.start_all(stack, key)
        for index in range(bench.rounds):
            bench.round(index, targets, results)
        proxy_url = targets[PROXY].url
        results.proxy_sent = bench.wrk.sent[proxy_url + CHAT_PATH] + 1  # and post_once
        results.events = proxy_events(proxy_url)
        results.access_sent = bench.wrk.sent[targets[LOG_ALL].url + CHAT_PATH] + 1
        results.fallbacks, results.redis_requests = redis_counts(targets[RPM_REDIS].url)
    log = proxy_log(bench.tmp, 1, True, "all").read_text(errors="replace")
    results.access_lines = log.count(" lectr.access ")
    return results


# --- the report -------------------------------------------------------------------------------


def _ratio(value: float) -> str:
    return f"{value:.2f}x"


def print_table(results: Results) -> None:
    direct_p50, direct_p99 = results.p50(DIRECT), results.p99(DIRECT)
    direct_rps, floor_rps = results.rps(DIRECT), results.rps(FLOOR)
    print(
        f"{'':40}{'p50 ms':>8}{'p99 ms':>8}{'+p50 ms':>9}{'+p99 ms':>9}"
        f"{'req/s':>9}{'spread':>8}{'/direct':>9}{'/floor':>8}{'CPU us/req':>11}"
    )
    for name in LOAD_ROWS:
        cells = ["-"] * 4
        if name in results.latency:
            p50, p99 = results.p50(name), results.p99(name)
            cells[:2] = f"{p50:.3f}", f"{p99:.3f}"
            if name != DIRECT:
                cells[2:] = f"{p50 - direct_p50:.3f}", f"{p99 - direct_p99:.3f}"
        rps = results.rps(name)
        print(
            f"{name:40}{cells[0]:>8}{cells[1]:>8}{cells[2]:>9}{cells[3]:>9}"
            f"{rps:>9,.0f}{results.rps_spread(name):>8.0%}"
            f"{rps / direct_rps:>9.3f}{rps / floor_rps:>8.3f}{_cpu(results.cpu_us(name)):>11}"
        )
    print(
        "(medians over the rounds; spread: highest minus lowest req/s over the median; "
        "+: added over direct; CPU us/req: the server process's own CPU time per request "
        "at load, which other processes on the machine do not disturb)"
    )


def _cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


@dataclass(frozen=True)
class Ratios:
    added_p50: float
    added_p99: float
    rps: float
    events: float
    workers: float
    floor_workers: float
    cpu: float
    cpu_events: float
    access_log: float
    cpu_access_log: float
    redis_rps: float
    redis_cpu: float
    redis_p50_us: float  # p50 the Redis check adds over the local one
    redis_p99_us: float

    @classmethod
    def of(cls, results: Results) -> Ratios:
        p50, p99, rps = results.p50, results.p99, results.rps
        return cls(
            added_p50=(p50(PROXY) - p50(DIRECT)) / (p50(FLOOR) - p50(DIRECT)),
            added_p99=(p99(PROXY) - p99(DIRECT)) / (p99(FLOOR) - p99(DIRECT)),
            rps=rps(PROXY) / rps(FLOOR),
            events=rps(PROXY) / rps(PROXY_OFF),
            workers=rps(PROXY_2) / rps(PROXY),
            floor_workers=rps(FLOOR_2) / rps(FLOOR),
            cpu=_cpu_ratio(results, PROXY, FLOOR),
            cpu_events=_cpu_ratio(results, PROXY, PROXY_OFF),
            access_log=rps(LOG_ALL) / rps(LOG_OFF),
            cpu_access_log=_cpu_ratio(results, LOG_ALL, LOG_OFF),
            redis_rps=rps(RPM_REDIS) / rps(RPM_LOCAL),
            redis_cpu=_cpu_ratio(results, RPM_REDIS, RPM_LOCAL),
            redis_p50_us=(p50(RPM_REDIS) - p50(RPM_LOCAL)) * 1000,
            redis_p99_us=(p99(RPM_REDIS) - p99(RPM_LOCAL)) * 1000,
        )


def _cpu_ratio(results: Results, name: str, other: str) -> float:
    mine, theirs = results.cpu_us(name), results.cpu_us(other)
    return mine / theirs if mine and theirs else float("nan")


def print_ratios(ratios: Ratios) -> None:
    print("Ratios")
    for label, value in (
        ("added p50, proxy / pass-through", ratios.added_p50),
        ("added p99, proxy / pass-through", ratios.added_p99),
        ("req/s, proxy / pass-through", ratios.rps),
        ("req/s, proxy events on / off", ratios.events),
        ("req/s, proxy --workers 2 / 1", ratios.workers),
        ("req/s, pass-through 2 processes / 1", ratios.floor_workers),
        ("CPU per request, proxy / pass-through", ratios.cpu),
        ("CPU per request, events on / off", ratios.cpu_events),
        ("req/s, access log all / off", ratios.access_log),
        ("CPU per request, access log all / off", ratios.cpu_access_log),
        ("req/s, Redis / local", ratios.redis_rps),
        ("CPU per request, Redis / local", ratios.redis_cpu),
    ):
        print(f"  {label:38}{_ratio(value):>8}")
    for label, value in (
        ("p50 added by the Redis check", ratios.redis_p50_us),
        ("p99 added by the Redis check", ratios.redis_p99_us),
    ):
        print(f"  {label:38}{value:>+5.0f} us")


def targets(ratios: Ratios, results: Results) -> list[tuple[str, bool, str]]:
    gain = ratios.workers / ratios.floor_workers
    fell_back = results.fallbacks_load.share
    redis_note = f" ({fell_back:.0%} of its checks at load fell back)" if fell_back > 0.01 else ""
    return [
        (
            f"added p50 <= {ADDED_P50_MAX}x pass-through",
            ratios.added_p50 <= ADDED_P50_MAX,
            _ratio(ratios.added_p50),
        ),
        (
            f"req/s >= {RPS_MIN:.0%} of pass-through",
            ratios.rps >= RPS_MIN,
            f"{ratios.rps:.0%}",
        ),
        (
            f"events on within {EVENTS_SPREAD_MAX:.0%} of off",
            abs(ratios.events - 1.0) <= EVENTS_SPREAD_MAX,
            f"{ratios.events - 1.0:+.1%}",
        ),
        (
            f"--workers 2 gain >= {WORKERS_GAIN_MIN:.0%} of pass-through's",
            gain >= WORKERS_GAIN_MIN,
            f"{gain:.0%}",
        ),
        (
            f"rpm limit in Redis req/s >= {REDIS_RPS_MIN:.0%} of local",
            ratios.redis_rps >= REDIS_RPS_MIN,
            f"{ratios.redis_rps:.0%}{redis_note}",
        ),
    ]


def print_events(results: Results) -> bool:
    """Print the events-on proxy's counters; False when events went missing."""
    published, dropped = results.events["events_published"], results.events["events_dropped"]
    left = results.events["buffer_depth"]
    print(
        f"Events (proxy, events on): {published:,} published, {dropped:,} dropped, "
        f"{left:,} still buffered, for {results.proxy_sent:,} requests wrk completed"
    )
    if published + dropped + left < results.proxy_sent:
        print("ERROR: fewer events than requests: the proxy did not record every request")
        return False
    print(
        f"Access log (proxy, access log all): {results.access_lines:,} lines "
        f"for {results.access_sent:,} requests wrk completed"
    )
    if results.access_lines < results.access_sent:
        print("ERROR: fewer access log lines than requests")
        return False
    return True


def print_fallbacks(results: Results, timeout_ms: float) -> None:
    """Print the Redis proxy's fallbacks (counted, not failed: see the module doc)."""
    counts = ", ".join(f"{check} {count:,}" for check, count in sorted(results.fallbacks.items()))
    total = sum(results.fallbacks.values())
    print(
        f"Redis fallbacks (proxy, rpm limit in Redis, LECTR_REDIS_TIMEOUT_MS={timeout_ms:g}): "
        f"{total:,} of the {results.redis_requests:,} requests it served ({counts}); "
        f"at 1 connection {_fallback_share(results.fallbacks_latency)}, "
        f"at {LOAD_CONNECTIONS} {_fallback_share(results.fallbacks_load)}"
    )
    share = total / max(results.redis_requests, 1)
    if share >= 0.01:  # a few late answers in a busy moment do not move the figures
        print(
            f"WARNING: {share:.0%} of that row's checks fell back "
            "to the local limiter (Redis answered later than LECTR_REDIS_TIMEOUT_MS, and "
            "after 3 late answers in a row the proxy stops asking until a probe answers): "
            "its Redis / local figures understate what Redis costs. On a loaded machine "
            "a larger --redis-timeout-ms (50) shows the cost of the check itself"
        )


def _fallback_share(counts: Fallbacks) -> str:
    return f"{counts.fallbacks:,} of {counts.requests:,} ({counts.share:.1%})"


def report(results: Results, bench: Bench) -> int:
    cores = bench.cores
    print(
        f"\nLectr proxy overhead: {bench.rounds} rounds; each {bench.wrk.duration_s:g} s "
        f"measurement after a {bench.wrk.warmup_s:g} s warm-up; wrk -t1, 1 and "
        f"{LOAD_CONNECTIONS} connections"
    )
    print(
        f"Cores: proxy / pass-through on {cores.server}, wrk and nginx on {cores.load}; "
        f"--workers 2 and the 2 pass-through processes on {cores.both}; Redis "
        f"({bench.redis}) is a system service, not pinned"
    )
    print(
        f"Every lectr proxy row checks the organisation's rate_limit_rpm ({RPM_LIMIT:,}, "
        f"nothing refused) locally, except '{RPM_REDIS}'"
    )
    print(f"Load average (1 min) before / after: {load_note(bench.load_before)}\n")
    print_table(results)
    print()
    ratios = Ratios.of(results)
    print_ratios(ratios)
    print()
    events_ok = print_events(results)
    print_fallbacks(results, bench.redis_timeout_ms)
    print("Targets")
    for label, ok, value in targets(ratios, results):
        print(f"  {label:44}{'PASS' if ok else 'MISS'}  {value}")
    return 0 if events_ok else 1


def load_note(before: float) -> str:
    after = os.getloadavg()[0]
    note = "" if before < 0.5 else "  (other work was running: expect noise)"
    return f"{before:.2f} / {after:.2f}{note}"


# --- entry point ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from proxy.settings import ProxySettings

    default_timeout_ms = ProxySettings.redis_timeout_ms
    parser = argparse.ArgumentParser(
        description="Proxy overhead over direct-to-upstream, next to an aiohttp pass-through."
    )
    parser.add_argument(
        "--duration", type=int, default=2, help="whole seconds per measurement (default 2)"
    )
    parser.add_argument(
        "--warmup", type=int, default=1, help="whole warm-up seconds before each (default 1)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds over every measurement (default 3)"
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432",
        help="Postgres server URL without a database (one is created and dropped)",
    )
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/", help="RabbitMQ")
    parser.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/0",
        help="Redis for the 'rpm limit in Redis' row (LECTR_REDIS_URL)",
    )
    parser.add_argument(
        "--redis-timeout-ms",
        type=float,
        default=default_timeout_ms,
        help=f"LECTR_REDIS_TIMEOUT_MS of that row (default the proxy's, {default_timeout_ms:g})",
    )
    parser.add_argument("--serve-passthrough", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.warmup < 0 or args.rounds < 1 or args.redis_timeout_ms <= 0:
        parser.error(
            "--duration, --rounds and --redis-timeout-ms must be positive, --warmup not negative"
        )
    return args


def run(args: argparse.Namespace) -> int:
    tools = find_tools()
    cores = pick_cores()
    check_redis(args.redis)
    load_before = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lectr-bench-")))
        upstream = stack.enter_context(nginx(tools, tmp, cores.load))
        lectr = lectr_settings(args.postgres, args.amqp, upstream)
        stack.callback(remove_lectr_data, lectr)
        print(f"Setting up database and broker prefix {lectr.prefix} ...", flush=True)
        key = create_org_key(lectr)
        wrk = Wrk(
            tools["wrk"],
            tools["taskset"],
            write_wrk_script(tmp, key),
            cores.load,
            args.warmup,
            args.duration,
        )
        bench = Bench(
            tools,
            cores,
            tmp,
            upstream,
            lectr,
            wrk,
            args.rounds,
            load_before,
            args.redis,
            args.redis_timeout_ms,
        )
        rows = len(LATENCY_ROWS) + len(LOAD_ROWS)
        seconds = args.rounds * rows * (args.warmup + args.duration)
        print(f"Measuring: {args.rounds} rounds of {rows} runs, about {seconds:.0f} s", flush=True)
        results = measure(bench, key)
        return report(results, bench)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # clean up as on Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_passthrough is not None:
        return run_passthrough(args.serve_passthrough, args.upstream)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(args)
    except SetupError as exc:
        print(f"proxy_overhead: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("proxy_overhead: interrupted; stopped and removed everything", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
