"""The names of the providers the proxy forwards to, for whoever validates them
without importing the proxy (the management API checks a rule's providers against it).

The proxy's own table (``proxy.providers``) holds each provider's URL, auth and model
prefixes; a test checks that its names are exactly these, so the two cannot drift.
"""

from __future__ import annotations

PROVIDER_NAMES = (
    "openai", "anthropic", "azure", "gemini", "groq", "mistral", "deepseek", "together", "xai",
)  # fmt: skip
