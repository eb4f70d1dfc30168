"""Everything a request handler reads, held by the app under one key."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from lectr.settings import Settings
from proxy.buffer import EventBuffer
from proxy.caches import Caches
from proxy.limits import Limits
from proxy.metrics import Metrics
from proxy.publisher import Publisher
from proxy.settings import ProxySettings
from proxy.shutdown import InFlight
from proxy.spool import Spool


@dataclass
class ProxyState:
    settings: Settings
    proxy: ProxySettings
    caches: Caches
    buffer: EventBuffer
    metrics: Metrics
    limits: Limits = field(default_factory=Limits)
    in_flight: InFlight = field(default_factory=InFlight)
    # Set by create_app; the publisher runs once the app's contexts start.
    publisher: Publisher | None = None
    spool: Spool | None = None
    # Set by the app's contexts as it starts.
    session: aiohttp.ClientSession | None = None
    draining: bool = False


STATE = web.AppKey("state", ProxyState)
