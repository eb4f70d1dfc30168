"""A property-based fuzz of the whole backbone: proxy → broker → consumer → Postgres.

Hypothesis draws malformed and hostile requests (raw header bytes, paths that try to
leave the provider's base, NUL and invalid text in models, broken JSON, bodies with big
integers, keys in the wrong header, HTTP-level garbage) from one attacker organisation,
while another organisation sends ordinary requests at the same time. The draws are
derandomised and bounded, so every run sends the same requests.

What must hold afterwards:
- every request was answered: relayed from the provider, or a Lectr error in the
  OpenAI shape, and no answer echoes a planted key or prompt;
- no request reached the provider outside its base path;
- every event the proxy made was stored or dead-lettered, or counted as dropped;
- all of the other organisation's events are stored;
- no planted key or prompt is in Postgres, the replay stream, the dead-letter queue or
  any log line (captured at DEBUG, tracebacks included).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

import aio_pika
import aiohttp
import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.main import serve
from consumers.settings import ConsumerSettings
from lectr import logs
from lectr.orgs import IssuedKey, create_org
from tests.proxy.conftest import PEPPER, RunningProxy
from tests.support.providers import PREFIXES, SIMULATED_HEADER, FakeProviders

CASES = 150
CONCURRENCY = 6
VICTIM_REQUESTS = 20
PROVIDER_SECRET = "sk-PLANTEDfuzz0provider0key0c4f1"
PROMPT = "PLANTED-FUZZ-PROMPT-71c3 the merger closes on friday"
FAST = ConsumerSettings(batch_size=50, flush_interval_s=0.1, retry_backoff_max_s=0.2)

# Paths taken from the attacks found so far, beside generated ones.
KNOWN_PATHS = (
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/models",
    "/v1/messages",
    "/v1/models%00x",
    "/v1/../../admin",
    "/v1/%2e%2e/%2e%2e/admin",
    "/v1/..%2f..%2fadmin",
    "/v1/chat%3Fx=1",
    "/v1/chat/completions?x=%23y&api-version=evil",
    "/v1/./chat/completions",
    "/v1//chat/completions",
    "/",
    "/admin",
    "/v2/chat/completions",
    "/v1/chat/completions%2f..",
    "/v1/%00",
)
MODELS = (
    "gpt-4o",
    "gpt-4o\u0000",
    "claude-sonnet-4-5",
    "..",
    ".",
    "../../admin",
    "gpt-4o?x=1#y",
    "\udcff\udce9",
    "",
    "x" * 500,
)


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    key: str  # "valid", "invalid", "missing", "in-authorization"
    auth: str | None
    headers: tuple[tuple[bytes, bytes], ...]
    raw_lines: tuple[bytes, ...]
    content_type: bytes | None
    body: bytes


_header_bytes = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
_segment = st.lists(
    st.sampled_from([*"ab.%2fFeE/?#\u0000é-_", "%2e", "%2F", "%00", "%3F", "%23", ".."]),
    max_size=8,
).map("".join)
_path = st.one_of(
    st.sampled_from(KNOWN_PATHS),
    st.lists(_segment, min_size=1, max_size=4).map(lambda parts: "/v1/" + "/".join(parts)),
)
_body_json = st.fixed_dictionaries(
    {"model": st.one_of(st.sampled_from(MODELS), st.text(max_size=20))},
    optional={
        "messages": st.just([{"role": "user", "content": PROMPT}]),
        "input": st.just(PROMPT),
        "stream": st.sampled_from([True, False, "true", 1, None]),
        "seed": st.sampled_from([123456789012345678901234567890, -(2**70), 2**63]),
    },
)


def _encode_body(body: dict) -> bytes:
    # Big integers and lone surrogates are written by hand: orjson refuses both.
    text = orjson.dumps({k: v for k, v in body.items() if k not in ("seed", "model")})
    parts = [text[1:-1]] if text != b"{}" else []
    model = body["model"]
    parts.append(b'"model":' + _json_string(model))
    if "seed" in body:
        parts.append(b'"seed":' + str(body["seed"]).encode())
    return b"{" + b",".join(parts) + b"}"


def _json_string(value: str) -> bytes:
    escaped = "".join(
        f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or 0xD800 <= ord(ch) <= 0xDFFF or ch in '"\\' else ch
        for ch in value
    )
    return ('"' + escaped + '"').encode("utf-8")


_body = st.one_of(
    _body_json.map(_encode_body),
    st.just(b""),
    st.just(b'{"model": "gpt-4o", "messages": [{"content": "' + PROMPT.encode() + b'"'),
    st.binary(max_size=80).map(lambda b: PROMPT.encode() + b),
    st.just(b'"just a string ' + PROMPT.encode() + b'"'),
)
_raw_lines = st.lists(
    st.sampled_from(
        [
            f"Authorization : Bearer {PROVIDER_SECRET}".encode(),
            f" X-Leading-Space: {PROVIDER_SECRET}".encode(),
            b"Transfer-Encoding: gzip",
            b"Transfer-Encoding: chunked",
            f"X-Folded: a\r\n  {PROVIDER_SECRET}".encode(),
            b"Content-Length: -1",
            b"X-" + b"h" * 9000 + b": 1",
            f"Bad Header Name: {PROVIDER_SECRET}".encode(),
        ]
    ),
    max_size=2,
)


@st.composite
def _cases(draw: st.DrawFn) -> Case:
    headers: list[tuple[bytes, bytes]] = []
    for name in (b"X-Lectr-Feature", b"X-Lectr-Task", b"X-Lectr-Provider"):
        choice = draw(st.sampled_from(["none", "plain", "bytes"]))
        if choice == "plain":
            plain = {
                b"X-Lectr-Provider": [b"openai", b"anthropic", b"groq", b"azure", b"opneai"],
                b"X-Lectr-Task": [b"classification", b"generation", b"caf\xe9-\xff"],
                b"X-Lectr-Feature": [b"support-bot", b"caf\xe9-\xff", b"a\x00b"],
            }[name]
            headers.append((name, draw(st.sampled_from(plain))))
        elif choice == "bytes":
            headers.append((name, draw(_header_bytes)))
    return Case(
        method=draw(st.sampled_from(["POST", "POST", "POST", "GET", "DELETE", "BREW"])),
        path=draw(_path),
        key=draw(st.sampled_from(["valid"] * 6 + ["invalid", "missing", "in-authorization"])),
        auth=draw(st.sampled_from([f"Bearer {PROVIDER_SECRET}", None, PROVIDER_SECRET])),
        headers=tuple(headers),
        raw_lines=tuple(draw(_raw_lines)) if draw(st.integers(0, 4)) == 0 else (),
        content_type=draw(st.sampled_from([b"application/json", b"text/plain", None])),
        body=draw(_body),
    )


def draw_cases(count: int) -> list[Case]:
    """``count`` cases, the same ones every run."""
    cases: list[Case] = []

    @settings(
        derandomize=True,
        max_examples=count,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(_cases())
    def collect(case: Case) -> None:
        cases.append(case)

    collect()
    return cases


def raw_request(case: Case, attacker: IssuedKey, port: int) -> bytes:
    target = case.path.encode("utf-8", "surrogateescape")
    lines = [
        case.method.encode() + b" " + target + b" HTTP/1.1",
        f"Host: 127.0.0.1:{port}".encode(),
    ]
    if case.key == "valid":
        lines.append(b"X-Lectr-Key: " + attacker.key.encode())
    elif case.key == "invalid":
        lines.append(b"X-Lectr-Key: lc_key_" + b"0" * 40)
    if case.key == "in-authorization":
        lines.append(b"X-Lectr-Key: " + attacker.key.encode())
        lines.append(b"Authorization: Bearer " + attacker.key.encode())
    elif case.auth is not None:
        lines.append(b"Authorization: " + case.auth.encode())
    lines.extend(name + b": " + value for name, value in case.headers)
    if case.content_type is not None:
        lines.append(b"Content-Type: " + case.content_type)
    lines.extend(case.raw_lines)
    lines.append(f"Content-Length: {len(case.body)}".encode())
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + case.body


@dataclass
class Answer:
    status: int | None
    headers: dict[str, str]
    body: bytes
    raw: bytes


async def send_raw(port: int, data: bytes, timeout_s: float = 15.0) -> Answer:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(-1), timeout_s)
    except ConnectionResetError:
        raw = b""
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    match = re.match(rb"HTTP/1\.[01] (\d{3})", lines[0]) if raw else None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    return Answer(int(match.group(1)) if match else None, headers, body, raw)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return bytes(out)


def is_openai_error(answer: Answer) -> bool:
    if answer.status is None or answer.status < 400:
        return False
    if not answer.headers.get("content-type", "").startswith("application/json"):
        return False
    try:
        error = orjson.loads(answer.body)["error"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return False
    return isinstance(error, dict) and {"message", "type", "code"} <= error.keys()


class Captured(logging.Handler):
    """Every log record of the process at DEBUG, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured_logs() -> Iterator[Captured]:
    """Logging as a process configures it at ``LECTR_LOG_LEVEL=DEBUG``, captured."""
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    logs.configure("DEBUG")
    handler = Captured()
    root.addHandler(handler)
    yield handler
    root.setLevel(before[0])
    root.handlers[:] = before[1]


async def victim_traffic(proxy: RunningProxy, victim: IssuedKey) -> int:
    """Ordinary streamed and whole requests from another organisation."""
    ok = 0
    async with aiohttp.ClientSession() as session:
        for index in range(VICTIM_REQUESTS):
            body = {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": PROMPT}],
                "stream": index % 2 == 0,
            }
            headers = {
                "X-Lectr-Key": victim.key,
                "Authorization": f"Bearer {PROVIDER_SECRET}",
                "X-Lectr-Feature": "victim",
            }
            async with session.post(
                f"{proxy.url}/v1/chat/completions", json=body, headers=headers
            ) as response:
                await response.read()
                ok += response.status == 200
            await asyncio.sleep(0.01)
    return ok


async def broker_bodies(proxy: RunningProxy, queue_name: str, stream: bool) -> list[bytes]:
    connection = await aio_pika.connect(proxy.amqp_url)
    bodies: list[bytes] = []
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=500)
        queue = await channel.get_queue(queue_name, ensure=False)
        if not stream:
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                bodies.append(message.body)
            return bodies
        inbox: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
        await queue.consume(inbox.put, arguments={"x-stream-offset": "first"})
        while True:
            try:
                message = await asyncio.wait_for(inbox.get(), 1.0)
            except TimeoutError:
                return bodies
            await message.ack()
            bodies.append(message.body)


async def test_fuzzed_requests_lose_nothing_and_leak_nothing(
    db: asyncpg.Connection,
    start_proxy,
    fake: FakeProviders,
    captured_logs: Captured,
    capfd: pytest.CaptureFixture[str],
) -> None:
    attacker = await create_org(db, "fuzz-attacker-" + PROVIDER_SECRET[-6:], pepper=PEPPER)
    victim = await create_org(db, "fuzz-victim-" + PROVIDER_SECRET[-6:], pepper=PEPPER)
    proxy = await start_proxy(publish_interval_s=0.05)
    port = int(proxy.url.rsplit(":", 1)[1])
    made = 0
    put = proxy.state.buffer.put

    def counting_put(event):  # type: ignore[no-untyped-def]
        nonlocal made
        made += 1
        return put(event)

    proxy.state.buffer.put = counting_put  # type: ignore[method-assign]
    cases = draw_cases(CASES)
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(case: Case) -> tuple[Case, Answer]:
        async with limit:
            return case, await send_raw(port, raw_request(case, attacker, port))

    victim_task = asyncio.create_task(victim_traffic(proxy, victim))
    answers = await asyncio.gather(*(one(case) for case in cases))
    assert await victim_task == VICTIM_REQUESTS

    secrets = (PROVIDER_SECRET, PROMPT, attacker.key, victim.key)
    for case, answer in answers:
        relayed = answer.headers.get(SIMULATED_HEADER.lower()) == "1"
        assert relayed or is_openai_error(answer), (case, answer.raw[:300])
        if not relayed:
            assert not any(s.encode() in answer.raw for s in secrets), (case, answer.raw[:300])

    for received in fake.received:
        segments = received.path.split("/")
        assert any(received.path.startswith(prefix + "/") for prefix in PREFIXES.values())
        assert "." not in segments and ".." not in segments, received.path

    # Every event made reached the broker or was counted as dropped.
    publisher = proxy.state.publisher
    assert publisher is not None
    assert await publisher.drain(15.0) == 0
    dropped = proxy.state.buffer.dropped + publisher.events_unencodable + publisher.events_refused
    assert publisher.published + dropped == made
    assert await asyncio.wait_for(serve(proxy.state.settings, FAST, drain=True), 60) == 0

    orgs = [attacker.org_id, victim.org_id]
    stored = await db.fetchval(
        "SELECT count(*) FROM request_logs WHERE org_id = ANY($1::uuid[])", orgs
    )
    victims = await db.fetchval(
        "SELECT count(*) FROM request_logs WHERE org_id = $1", victim.org_id
    )
    dead = await broker_bodies(proxy, proxy.names.dead, stream=False)
    dead_events = sum(len(orjson.loads(body).get("events", [])) for body in dead)
    assert victims == VICTIM_REQUESTS
    assert stored + dead_events == publisher.published

    # Nothing planted is kept anywhere durable, nor in any log line.
    tables = await db.fetch(
        "SELECT t::text FROM request_logs t WHERE org_id = ANY($1::uuid[]) UNION ALL "
        "SELECT t::text FROM request_rollups t WHERE org_id = ANY($1::uuid[]) UNION ALL "
        "SELECT t::text FROM pipeline_health t",
        orgs,
    )
    replay = await broker_bodies(proxy, proxy.names.replay, stream=True)
    assert replay, "the replay stream holds the stored events"
    kept = {
        "postgres": "\n".join(row[0] for row in tables).encode(),
        "replay stream": b"\n".join(replay),
        "dead-letter queue": b"\n".join(dead),
        "logs": "\n".join(captured_logs.lines).encode("utf-8", "backslashreplace"),
        "stderr and stdout": "".join(capfd.readouterr()).encode("utf-8", "backslashreplace"),
    }
    for where, data in kept.items():
        for secret in secrets:
            assert secret.encode() not in data, f"{secret[:12]}… found in {where}"
