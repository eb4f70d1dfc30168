"""The demo's own setting, read with the same rules and errors as every other."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lectr.settings import EnvReader, port


@dataclass(frozen=True)
class DemoSettings:
    # The port of the proxy `lectr demo` runs for its live traffic (on LECTR_HOST).
    proxy_port: int = 8090

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DemoSettings:
        """Raises :class:`lectr.settings.SettingsError` naming a bad variable."""
        read = EnvReader(environ).read
        return cls(proxy_port=read("LECTR_DEMO_PROXY_PORT", cls.proxy_port, port))
