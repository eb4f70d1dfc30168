"""Tell running proxies that what they cache has changed."""

from __future__ import annotations

import sys
import uuid

from lectr import broker
from lectr.settings import Settings
from schema.control import ControlMessage


async def publish(
    settings: Settings, org_id: uuid.UUID, caches: tuple[str, ...]
) -> broker.BrokerUnavailable | None:
    """Publish one control message per cache for ``org_id``; return why it could not
    (the broker unreachable or lost while publishing), or None once published."""
    names = broker.BrokerNames(settings.broker_prefix)
    try:
        amqp = await broker.connect(settings.amqp_url)
        async with amqp, amqp.channel() as channel:
            for cache in caches:
                await broker.publish_control(channel, names, ControlMessage(cache, org_id).encode())
    except broker.BrokerUnavailable as exc:
        return exc
    except broker.UNREACHABLE_ERRORS as exc:  # lost while publishing
        return broker.BrokerUnavailable(settings.amqp_url, exc)
    return None


async def notify_proxies(settings: Settings, org_id: uuid.UUID, caches: tuple[str, ...]) -> None:
    """Publish one control message per cache for ``org_id``.

    The change is already committed, so a broker outage only delays it: proxies pick it
    up at their next full reload. A warning says so on stderr; nothing is raised.
    """
    failure = await publish(settings, org_id, caches)
    if failure is not None:
        _warn(failure)


def _warn(reason: broker.BrokerUnavailable) -> None:
    print(
        f"lectr: warning: could not notify running proxies: {reason}; they pick the "
        "change up at their next full cache reload",
        file=sys.stderr,
    )
