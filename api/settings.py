"""The management API's own settings, read once at start-up.

The settings every process shares (admin secret, ports, dashboard URL) are in
:class:`lectr.settings.Settings`; these decide who may call the API: the environment
(production refuses the development admin secret), whether operators may sign in with
the admin secret at all, and the OIDC issuer whose access tokens dashboard users bring.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from lectr.mail import MailSettings
from lectr.settings import (
    DEV_ADMIN_SECRET,
    EnvReader,
    Settings,
    SettingsError,
    http_url,
    positive_float,
    positive_int,
    text,
)

ENVIRONMENTS = ("development", "production")
# The dashboard's build in the source tree (``make dashboard`` writes it).
SOURCE_DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "dashboard" / "dist"
_SWITCH = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}


def _env(value: str, variable: str) -> str:
    env = value.strip().lower()
    if env not in ENVIRONMENTS:
        raise SettingsError(variable, f"expected one of {', '.join(ENVIRONMENTS)}, got {value!r}")
    return env


def _switch(value: str, variable: str) -> bool:
    try:
        return _SWITCH[value.strip().lower()]
    except KeyError:
        raise SettingsError(variable, f"expected on or off, got {value!r}") from None


def _issuer(value: str, variable: str) -> str:
    """Kept exactly as written: ``iss`` is compared to it character for character, so
    Auth0's ``https://TENANT.auth0.com/`` keeps its trailing slash."""
    issuer = value.strip()
    parts = urlsplit(issuer)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(variable, f"expected an http(s) URL, got {value!r}")
    if parts.query or parts.fragment:
        raise SettingsError(variable, f"an issuer has no query or fragment, got {value!r}")
    return issuer


def _leeway(value: str, variable: str) -> int:
    try:
        seconds = int(value)
    except ValueError:
        raise SettingsError(variable, f"expected whole seconds, got {value!r}") from None
    if not 0 <= seconds <= 300:
        raise SettingsError(variable, f"must be 0-300 seconds, got {seconds}")
    return seconds


def _directory(value: str, variable: str) -> Path:
    """A directory path; it need not exist yet (the API says the build is missing)."""
    return Path(value.strip()).expanduser()


def _suffixes(value: str, variable: str) -> tuple[str, ...]:
    """Comma-separated host suffixes, each starting with a dot (so ``.openai.azure.com``
    cannot be met by ``evilopenai.azure.com``)."""
    found = tuple(s.strip().lower() for s in value.split(",") if s.strip())
    bad = [s for s in found if not s.startswith(".") or "/" in s or len(s) < 3]
    if not found or bad:
        raise SettingsError(variable, f"expected suffixes like .openai.azure.com, got {value!r}")
    return found


@dataclass(frozen=True)
class ApiSettings:
    """Who may call the management API.

    ``env``: ``production`` refuses the development default admin secret
    (``LECTR_ENV``). ``operator_api``: operators may sign in with ``LECTR_ADMIN_SECRET``
    (``LECTR_OPERATOR_API`` on/off). ``oidc_issuer``: the issuer of dashboard users'
    access tokens, compared exactly with their ``iss``; unset, only operators get in.
    ``oidc_audience``: a token's ``aud`` must contain it (the API identifier in Auth0).
    ``oidc_client_id``: what the dashboard signs in as (given to it by ``/api/config``).
    ``jwt_leeway_s``: clock skew allowed on ``exp``/``nbf``/``iat``.
    ``oidc_timeout_s``: limit on each request to the issuer (discovery, JWKS, userinfo).
    ``azure_endpoint_suffixes``: an org's Azure endpoint host must end with one of them.
    ``invite_ttl_h``: hours an invite works (``LECTR_INVITE_TTL_H``). ``mail``: the SMTP
    server invites go out through, the one the scheduler sends alerts with.
    ``session_ttl_min``: minutes an operator's browser session lasts without a request
    (``LECTR_SESSION_TTL_MIN``; sliding, never past 12 h after signing in).
    ``dashboard_dir``: the dashboard's build the API serves (``LECTR_DASHBOARD_DIR``;
    default ``dashboard/dist`` of the source tree). ``proxy_url``: the proxy's address as
    clients reach it, shown in the dashboard's client snippets (``LECTR_PROXY_URL``;
    default ``http://LECTR_HOST:LECTR_PROXY_PORT``, see :meth:`client_proxy_url`).
    """

    env: str = "development"
    operator_api: bool = True
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_client_id: str | None = None
    jwt_leeway_s: int = 60
    oidc_timeout_s: float = 5.0
    azure_endpoint_suffixes: tuple[str, ...] = (".openai.azure.com", ".cognitiveservices.azure.com")
    invite_ttl_h: int = 72
    mail: MailSettings = field(default_factory=MailSettings)
    session_ttl_min: int = 60
    dashboard_dir: Path = SOURCE_DASHBOARD_DIR
    proxy_url: str | None = None

    @property
    def production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        """Unset or empty variables take the default; a bad value raises
        :class:`lectr.settings.SettingsError` naming the variable."""
        read = EnvReader(environ).read
        d = cls()
        built = cls(
            env=read("LECTR_ENV", d.env, _env),
            operator_api=read("LECTR_OPERATOR_API", d.operator_api, _switch),
            oidc_issuer=read("LECTR_OIDC_ISSUER", d.oidc_issuer, _issuer),
            oidc_audience=read("LECTR_OIDC_AUDIENCE", d.oidc_audience, text),
            oidc_client_id=read("LECTR_OIDC_CLIENT_ID", d.oidc_client_id, text),
            jwt_leeway_s=read("LECTR_JWT_LEEWAY_S", d.jwt_leeway_s, _leeway),
            oidc_timeout_s=read("LECTR_OIDC_TIMEOUT_S", d.oidc_timeout_s, positive_float),
            azure_endpoint_suffixes=read(
                "LECTR_AZURE_ENDPOINT_SUFFIXES", d.azure_endpoint_suffixes, _suffixes
            ),
            invite_ttl_h=read("LECTR_INVITE_TTL_H", d.invite_ttl_h, positive_int),
            mail=MailSettings.from_env(environ),
            session_ttl_min=read("LECTR_SESSION_TTL_MIN", d.session_ttl_min, positive_int),
            dashboard_dir=read("LECTR_DASHBOARD_DIR", d.dashboard_dir, _directory),
            proxy_url=read("LECTR_PROXY_URL", d.proxy_url, http_url),
        )
        if built.oidc_issuer and not built.oidc_audience:
            # Without an audience, any token the issuer signs for another application
            # would open the API.
            raise SettingsError("LECTR_OIDC_AUDIENCE", "required when LECTR_OIDC_ISSUER is set")
        return built

    def client_proxy_url(self, settings: Settings) -> str:
        """Where clients send requests: ``LECTR_PROXY_URL``, else the proxy's own
        address (``127.0.0.1`` when it listens on every interface)."""
        if self.proxy_url:
            return self.proxy_url.rstrip("/")
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{settings.proxy_port}"

    def operator_secret(self, settings: Settings) -> str | None:
        """The secret operators sign in with, or None when operator access is off:
        turned off, or the development default in production."""
        if not self.operator_api:
            return None
        if self.production and settings.admin_secret == DEV_ADMIN_SECRET:
            return None
        return settings.admin_secret

    def problems(self, settings: Settings) -> list[str]:
        """What the API should warn about at start (one log line each)."""
        found = []
        if self.operator_api and settings.admin_secret == DEV_ADMIN_SECRET:
            if self.production:
                found.append(
                    "LECTR_ADMIN_SECRET is the development default: operator access is "
                    "refused in production until it is set (or set LECTR_OPERATOR_API=off)"
                )
            else:
                found.append("LECTR_ADMIN_SECRET is the development default; set it in production")
        if self.oidc_issuer is None:
            found.append("LECTR_OIDC_ISSUER is not set: dashboard users cannot sign in")
        elif self.production and not self.oidc_issuer.startswith("https://"):
            found.append("LECTR_OIDC_ISSUER is not https: its keys can be tampered with in transit")
        if self.mail.url is None:
            found.append("LECTR_SMTP_URL is not set: invites cannot be sent")
        return found
