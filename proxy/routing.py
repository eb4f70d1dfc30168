"""Which provider and model a request goes to: the header, the path, the model name,
then the organisation's rules.

A rule that changes the provider applies only when the request carries the caller's key
for the target (``X-Lectr-Provider-Key-<provider>``): otherwise the request goes on
unchanged and the route names the skipped rule, so no key is sent where it does not
belong. A rule that keeps the provider (a model rewrite) always applies.

Pure functions over the in-memory snapshot: nothing here waits on anything.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from proxy.caches import Rule
from proxy.providers import PROVIDERS, detect

log = logging.getLogger(__name__)

# Anthropic's native API: always Anthropic, whatever the model or rules say.
ANTHROPIC_NATIVE_PREFIX = "messages"


@dataclass(frozen=True, slots=True)
class Route:
    provider: str
    # The model the client asked for, and the one forwarded (after a rule's rewrite).
    requested_model: str | None
    model: str | None
    # True when no provider owns the model (it went to the default provider).
    provider_unknown: bool = False
    rule_id: uuid.UUID | None = None
    # A matching rule not applied: it changes the provider and no key for it was sent.
    skipped_rule_id: uuid.UUID | None = None


class InvalidProvider(ValueError):
    """``X-Lectr-Provider`` names no known provider."""


def is_anthropic_native(rest: str) -> bool:
    """True for ``/v1/messages`` and below (``rest`` is the path after ``/v1/``)."""
    return rest == ANTHROPIC_NATIVE_PREFIX or rest.startswith(ANTHROPIC_NATIVE_PREFIX + "/")


def provider_header(value: str | None) -> str | None:
    """The provider ``X-Lectr-Provider`` names (any case), None when it is absent;
    raises :class:`InvalidProvider` for a name Lectr does not know."""
    if not value:
        return None
    name = value.strip().lower()
    if name not in PROVIDERS:
        raise InvalidProvider(f"X-Lectr-Provider must be one of {', '.join(PROVIDERS)}")
    return name


def choose_provider(
    header: str | None, rest: str, model: str | None, default: str
) -> tuple[str, bool]:
    """(provider, provider_unknown) before rules; ``header`` is a known provider's name
    (see :func:`provider_header`)."""
    if is_anthropic_native(rest):
        return "anthropic", False
    if header:
        return header, False
    if model:
        detected = detect(model)
        if detected is not None:
            return detected, False
        return default, True
    return default, False


def matching_rule(
    rules: Sequence[Rule], feature: str, task: str | None, provider: str, model: str | None
) -> Rule | None:
    """The first rule (in priority order) whose set conditions all match."""
    for rule in rules:
        if (
            (rule.match_feature is None or rule.match_feature == feature)
            and (rule.match_task is None or rule.match_task == task)
            and (rule.match_provider is None or rule.match_provider == provider)
            and (rule.match_model is None or rule.match_model == model)
        ):
            return rule
    return None


def route(
    rules: Sequence[Rule],
    *,
    header: str | None,
    rest: str,
    model: str | None,
    feature: str,
    task: str | None,
    default_provider: str,
    has_key_for: Callable[[str], bool] = lambda provider: False,
) -> Route:
    """Where the request goes. A rule that cannot apply (an unknown target provider, or a
    provider change on Anthropic's native API) is ignored; one that changes the provider
    without ``has_key_for(target)`` is skipped (and named); no rule means no change."""
    provider, unknown = choose_provider(header, rest, model, default_provider)
    try:
        rule = matching_rule(rules, feature, task, provider, model)
    except Exception:  # a failed evaluation forwards the request unchanged
        log.exception("rule evaluation failed; forwarding unchanged")
        rule = None
    if rule is None or not _applicable(rule, rest, provider):
        return Route(provider, model, model, unknown)
    target = rule.target_provider
    if target is not None and target != provider and not has_key_for(target):
        return Route(provider, model, model, unknown, skipped_rule_id=rule.id)
    target_provider = rule.target_provider or provider
    return Route(
        target_provider,
        model,
        rule.target_model or model,
        unknown and rule.target_provider is None,
        rule.id,
    )


def _applicable(rule: Rule, rest: str, provider: str) -> bool:
    target = rule.target_provider
    if target is None or target == provider:
        return True
    if target not in PROVIDERS:
        log.warning("rule %s targets unknown provider %r; skipped", rule.id, target)
        return False
    return not is_anthropic_native(rest)
