"""The names a client's model string may be known under in reference data.

Clients send model names as their SDK or router spells them: with a provider prefix
(``openai/gpt-4o`` through a router, Gemini's ``models/gemini-2.5-pro``) or as a dated
snapshot (``gpt-4o-2024-08-06``, ``claude-sonnet-4-5-20250929``, ``…@20250929``).
Reference tables (``model_pricing``, ``model_downgrades``) hold family names, so a
lookup tries the exact name first, then these variants. The exact name comes first
because some providers list prefixed names of their own (Groq's ``openai/gpt-oss-120b``).
Shared by the consumer (prices) and the scheduler (downgrade paths).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_PREFIX_RE = re.compile(r"^(models|openai|anthropic|google|gemini|groq|mistral|azure)/")
_DATE_RE = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8})$")


def candidate_names(model: str) -> Iterator[str]:
    """The names tried for ``model``, in order: as given, without a provider prefix,
    without a release date suffix, without both (duplicates and empty names skipped)."""
    seen: set[str] = set()
    bare = _PREFIX_RE.sub("", model)
    for name in (model, bare, _DATE_RE.sub("", model), _DATE_RE.sub("", bare)):
        if name and name not in seen:
            seen.add(name)
            yield name
