"""Tell running proxies that what they cache has changed."""

from __future__ import annotations

import sys
import uuid

import aio_pika

from lectr import broker
from lectr.settings import Settings, redact_url
from schema.control import ControlMessage

BROKER_TIMEOUT_S = 10.0


async def notify_proxies(settings: Settings, org_id: uuid.UUID, caches: tuple[str, ...]) -> None:
    """Publish one control message per cache for ``org_id``.

    The change is already committed, so a broker outage only delays it: proxies pick it
    up at their next full reload. A warning says so on stderr; nothing is raised.
    """
    names = broker.BrokerNames(settings.broker_prefix)
    try:
        amqp = await aio_pika.connect(settings.amqp_url, timeout=BROKER_TIMEOUT_S)
        async with amqp, amqp.channel() as channel:
            for cache in caches:
                await broker.publish_control(channel, names, ControlMessage(cache, org_id).encode())
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        print(
            f"lectr: warning: could not notify running proxies through LECTR_AMQP_URL "
            f"({redact_url(settings.amqp_url)}): {exc or type(exc).__name__}; they pick the "
            "change up at their next full cache reload",
            file=sys.stderr,
        )
