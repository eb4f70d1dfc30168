"""The reviewed price and downgrade files, and the loader's checks on them."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from schema import reference_data
from schema.reference_data import PROVIDERS, ReferenceDataError, load_downgrades, load_pricing


def test_every_provider_has_prices_and_a_dated_source() -> None:
    pricing = load_pricing()
    assert {p.provider for p in pricing.prices} == set(PROVIDERS)
    for provider in PROVIDERS:
        assert "(as of 20" in pricing.sources[provider]
    for price in pricing.prices:
        assert price.output_per_mtok >= 0 and price.input_per_mtok > 0


def test_every_downgrade_is_cheaper_within_its_provider() -> None:
    pricing = load_pricing()
    downgrades = load_downgrades(pricing=pricing)
    assert downgrades.paths
    priced = {(p.provider, p.model): p for p in pricing.prices}
    for path in downgrades.paths:
        source = priced[(path.provider, path.model)]
        target = priced[(path.provider, path.target_model)]
        assert target.input_per_mtok < source.input_per_mtok
        assert target.output_per_mtok < source.output_per_mtok


def _write(tmp_path, monkeypatch, name: str, data: object) -> None:
    monkeypatch.setattr(reference_data, "REFERENCE_DIR", tmp_path)
    (tmp_path / name).write_bytes(orjson.dumps(data))


GOOD = {
    "taken_on": "2026-10-01",
    "sources": {"openai": {"url": "https://example.test/pricing", "as_of": "2026-10-01"}},
    "models": [
        {"provider": "openai", "model": "big", "input": "2", "output": "8", "cached_input": None},
        {"provider": "openai", "model": "small", "input": "0.1", "output": "0.4"},
    ],
}


def test_prices_are_exact_decimals(tmp_path, monkeypatch) -> None:
    _write(tmp_path, monkeypatch, "p.json", GOOD)
    pricing = load_pricing("p.json")
    assert pricing.prices[1].input_per_mtok == Decimal("0.1")
    assert pricing.rows()[0]["source"] == "https://example.test/pricing (as of 2026-10-01)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input": "-1"}, "non-negative"),
        ({"input": "cheap"}, "not a price"),
        ({"provider": "acme"}, "unknown provider"),
        ({"model": "small"}, "listed twice"),
        ({"provider": "anthropic"}, "no source"),
    ],
)
def test_a_bad_price_file_is_refused(tmp_path, monkeypatch, change, message) -> None:
    bad = {**GOOD, "models": [{**GOOD["models"][0], **change}, GOOD["models"][1]]}
    _write(tmp_path, monkeypatch, "p.json", bad)
    with pytest.raises(ReferenceDataError, match=message):
        load_pricing("p.json")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ({"model": "small", "target_model": "big", "steps": 1}, "not cheaper"),
        ({"model": "big", "target_model": "tiny", "steps": 1}, "pricing file"),
        ({"model": "big", "target_model": "small", "steps": 0}, "steps"),
    ],
)
def test_a_bad_downgrade_is_refused(tmp_path, monkeypatch, path, message) -> None:
    _write(tmp_path, monkeypatch, "p.json", GOOD)
    pricing = load_pricing("p.json")
    downgrades = {"taken_on": "2026-10-01", "paths": [{"provider": "openai", **path}]}
    _write(tmp_path, monkeypatch, "d.json", downgrades)
    with pytest.raises(ReferenceDataError, match=message):
        load_downgrades("d.json", pricing=pricing)
