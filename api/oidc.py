"""Verifying dashboard users' OIDC access tokens against the issuer's published keys.

Discovery (``<issuer without trailing slash>/.well-known/openid-configuration``) gives
the ``jwks_uri`` and ``userinfo_endpoint``; both documents are cached. A token whose
``kid`` is not in the cached key set makes one refetch, at most once a minute, so a
stream of forged ``kid``s cannot make the API hammer the issuer. Only RS256 and ES256 are
accepted: ``alg: none`` and HS256 signed with the public key never verify. The issuer
being unreachable refuses tokens (:class:`TokenError`, logged); it is never a 500.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import aiohttp
import jwt
import orjson

log = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "ES256")
_KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}
_MAX_DOCUMENT_BYTES = 1_000_000


class TokenError(Exception):
    """A token was refused; the message says why (for logs, never for the caller)."""


class FetchError(Exception):
    """The issuer did not answer a discovery, JWKS or userinfo request usably."""


async def fetch_json(url: str, timeout_s: float, bearer: str | None = None) -> dict[str, Any]:
    """GET a JSON object. One short-lived session per call: these calls are rare
    (cached) and a session per call needs no shutdown hook."""
    headers = {"Accept": "application/json"}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    try:
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers=headers, allow_redirects=False) as response,
        ):
            if response.status != 200:
                raise FetchError(f"{url} answered {response.status}")
            body = await response.content.read(_MAX_DOCUMENT_BYTES + 1)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from None
    if len(body) > _MAX_DOCUMENT_BYTES:
        raise FetchError(f"{url} answered more than {_MAX_DOCUMENT_BYTES} bytes")
    try:
        document = orjson.loads(body)
    except ValueError:
        raise FetchError(f"{url} did not answer JSON") from None
    if not isinstance(document, dict):
        raise FetchError(f"{url} did not answer a JSON object")
    return document


def _usable_keys(jwks: dict[str, Any]) -> list[jwt.PyJWK]:
    """Signing keys of a supported type; others (encryption keys, HMAC ``oct``) are
    skipped so a JWKS can never turn a symmetric key into a verification key."""
    keys = []
    for data in jwks.get("keys") or []:
        if not isinstance(data, dict) or data.get("kty") not in ("RSA", "EC"):
            continue
        if data.get("use", "sig") != "sig":
            continue
        try:
            keys.append(jwt.PyJWK(data))
        except jwt.PyJWTError as exc:
            log.warning("skipping a JWKS key (kid %r): %s", data.get("kid"), exc)
    return keys


class OidcVerifier:
    """Verifies access tokens of one issuer for one audience.

    ``clock`` paces JWKS refetches: a key set is refetched for an unknown ``kid`` only
    when ``refetch_interval_s`` has passed since the last fetch, and anyway once it is
    older than ``max_age_s`` (so a key the issuer withdrew stops working). While no key
    set could be fetched, a new attempt is made at most every ``retry_after_failure_s``.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        leeway_s: int = 60,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
        refetch_interval_s: float = 60.0,
        max_age_s: float = 3600.0,
        retry_after_failure_s: float = 5.0,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.discovery_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        self._leeway_s = leeway_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._refetch_interval_s = refetch_interval_s
        self._max_age_s = max_age_s
        self._retry_after_failure_s = retry_after_failure_s
        self._lock = asyncio.Lock()
        self._discovery: dict[str, Any] | None = None
        self._keys: list[jwt.PyJWK] | None = None
        self._fetched_at = 0.0  # when the cached key set was fetched
        self._attempted_at: float | None = None  # last fetch attempt, success or not
        self._emails: OrderedDict[str, tuple[float, str | None]] = OrderedDict()

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims when its signature, issuer, audience and times are good
        and it has a ``sub``; otherwise :class:`TokenError`."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError(f"not a JWT: {exc}") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise TokenError(f"algorithm {alg!r} is not accepted")
        key = await self._key(header.get("kid"), alg)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self._leeway_s,
                options={"require": ["exp", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(f"{type(exc).__name__}: {exc}") from None
        if not claims.get("sub"):
            raise TokenError("empty sub")
        return claims

    async def _key(self, kid: Any, alg: str) -> jwt.PyJWK:
        async with self._lock:
            now = self._clock()
            if self._keys is None or now - self._fetched_at >= self._max_age_s:
                await self._refresh(now, self._retry_after_failure_s)
            if self._keys is None:
                raise TokenError("the issuer's keys are unavailable")
            key = self._find(kid, alg)
            if key is None:
                await self._refresh(now, self._refetch_interval_s)
                key = self._find(kid, alg)
        if key is None:
            raise TokenError(f"no key {kid!r} for {alg} in the issuer's JWKS")
        return key

    def _find(self, kid: Any, alg: str) -> jwt.PyJWK | None:
        candidates = [
            key
            for key in self._keys or []
            if key.algorithm_name == alg and key.key_type == _KEY_TYPES[alg]
        ]
        if kid is None:
            # Some issuers omit kid when they publish a single key.
            return candidates[0] if len(candidates) == 1 else None
        return next((key for key in candidates if key.key_id == kid), None)

    async def _refresh(self, now: float, min_interval_s: float) -> None:
        """Fetch the key set unless the last attempt is under ``min_interval_s`` old.
        A failure keeps the keys already cached and is logged."""
        if self._attempted_at is not None and now - self._attempted_at < min_interval_s:
            return
        self._attempted_at = now
        try:
            discovery = await self._discover()
            jwks = await fetch_json(str(discovery["jwks_uri"]), self._timeout_s)
        except FetchError as exc:
            self._discovery = None  # the jwks_uri may have moved: rediscover next time
            log.warning("cannot fetch the OIDC issuer's keys (tokens refused): %s", exc)
            return
        self._keys = _usable_keys(jwks)
        self._fetched_at = now
        log.info("fetched %d signing keys from %s", len(self._keys), discovery["jwks_uri"])

    async def _discover(self) -> dict[str, Any]:
        if self._discovery is None:
            discovery = await fetch_json(self.discovery_url, self._timeout_s)
            if not isinstance(discovery.get("jwks_uri"), str):
                raise FetchError(f"{self.discovery_url} has no jwks_uri")
            self._discovery = discovery
        return self._discovery

    async def userinfo_email(self, token: str, subject: str) -> str | None:
        """The user's verified email from the issuer's userinfo endpoint (asked with the
        access token), or None. Cached per subject, five minutes (one minute when it
        failed), so users whose tokens carry no email do not cost a request each time."""
        now = self._clock()
        cached = self._emails.get(subject)
        if cached is not None and cached[0] > now:
            return cached[1]
        email, ttl_s = None, 60.0
        try:
            async with self._lock:
                discovery = await self._discover()
            endpoint = discovery.get("userinfo_endpoint")
            if isinstance(endpoint, str):
                info = await fetch_json(endpoint, self._timeout_s, bearer=token)
                email, ttl_s = _verified_email(info, subject), 300.0
        except FetchError as exc:
            log.warning("cannot ask the OIDC issuer's userinfo endpoint: %s", exc)
        self._emails[subject] = (now + ttl_s, email)
        self._emails.move_to_end(subject)
        while len(self._emails) > 1000:
            self._emails.popitem(last=False)
        return email


def _verified_email(info: dict[str, Any], subject: str) -> str | None:
    """userinfo's email, unless it belongs to someone else or is marked unverified."""
    if info.get("sub") not in (None, subject):
        return None
    return verified_email(info)


def verified_email(claims: dict[str, Any]) -> str | None:
    """The ``email`` claim unless ``email_verified`` is false: an unverified address
    must not claim someone's membership."""
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email or claims.get("email_verified") is False:
        return None
    return email.strip()
