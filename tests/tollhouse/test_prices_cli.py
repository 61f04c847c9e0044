"""``tollhouse prices load|list`` as finance runs them: derived internal rates, loading
twice, and the refusals that keep stored prices immutable and never backdated."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from governance.db import AuditRecord, PriceRecord, make_engine, session_factory
from tollhouse.cli import main
from tollhouse.commands.context import KEY_VARIABLE

TODAY = dt.datetime.now(dt.UTC).date()
STARTED = TODAY - dt.timedelta(days=10)
GPU = {"gpu_hour_cost": "2.50", "gpus": 2, "input_tokens_per_s": 12000, "output_tokens_per_s": 1500}


def per_million(tokens_per_s: int) -> Decimal:
    """cost per hour / (tokens per second x 3600) x 1e6, to six places."""
    per_hour = Decimal(GPU["gpu_hour_cost"]) * GPU["gpus"]
    rate = per_hour / (Decimal(tokens_per_s) * 3600) * Decimal(1_000_000)
    return rate.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


def price_file(path: Path, *prices: dict[str, Any], currency: str = "USD") -> Path:
    path.write_text(yaml.safe_dump({"currency": currency, "prices": list(prices)}))
    return path


OPENAI = {
    "upstream": "openai",
    "model": "gpt-4o-mini",
    "effective_from": STARTED,
    "input": "0.15",
    "cached_input": "0.075",
    "output": "0.60",
}
INTERNAL = {
    "upstream": "vllm-a",
    "model": "llama-3.1-8b",
    "effective_from": STARTED,
    "internal": GPU,
}


@pytest.fixture
def config(fresh_database_url: str, tmp_path: Path) -> Path:
    path = tmp_path / "tollhouse.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database_url": fresh_database_url,
                "upstreams": [
                    {
                        "name": "openai",
                        "base_url": "http://127.0.0.1:9/v1",
                        "destination": "external",
                    },
                    {
                        "name": "vllm-a",
                        "base_url": "http://127.0.0.1:9/v1",
                        "destination": "internal",
                    },
                ],
                "models": [
                    {
                        "name": "mini",
                        "deployments": [{"upstream": "openai", "model": "gpt-4o-mini"}],
                    },
                    {
                        "name": "llama",
                        "deployments": [{"upstream": "vllm-a", "model": "llama-3.1-8b"}],
                    },
                ],
            }
        )
    )
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    printed = capsys.readouterr()
    return code, printed.out, printed.err


def stored(database_url: str) -> list[PriceRecord]:
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            order = (PriceRecord.upstream, PriceRecord.model, PriceRecord.effective_from)
            return list(session.scalars(select(PriceRecord).order_by(*order)))
    finally:
        engine.dispose()


def load_records(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            query = select(func.count()).where(AuditRecord.endpoint == "prices.load")
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


def test_load_derives_internal_rates_and_list_shows_them(
    config: Path, fresh_database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = ["--config", str(config)]
    path = price_file(tmp_path / "prices.yaml", OPENAI, INTERNAL)
    code, out, err = run(capsys, "prices", "load", str(path), *cfg)
    assert code == 0, err
    assert out.startswith(f"added 2 prices from {path}:") and "0 already stored" in out
    input_rate, output_rate = per_million(12000), per_million(1500)
    assert (input_rate, output_rate) == (Decimal("0.115741"), Decimal("0.925926"))
    openai, internal = stored(fresh_database_url)
    assert (internal.input, internal.cached_input, internal.output) == (
        input_rate,
        None,
        output_rate,
    )
    assert internal.basis == {
        "internal": {
            "gpu_hour_cost": "2.50",
            "gpus": 2,
            "input_tokens_per_s": "12000",
            "output_tokens_per_s": "1500",
        }
    }
    assert (openai.input, openai.cached_input, openai.output, openai.basis) == (
        Decimal("0.15"),
        Decimal("0.075"),
        Decimal("0.60"),
        None,
    )
    assert internal.currency == "USD" and internal.source == str(path)

    code, out, _ = run(capsys, "prices", "list", *cfg)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "upstream",
        "model",
        "effective_from",
        "input",
        "cached_input",
        "output",
        "currency",
        "basis",
    ]
    started = STARTED.isoformat()
    assert lines[2].split() == [
        "openai",
        "gpt-4o-mini",
        started,
        "0.15",
        "0.075",
        "0.6",
        "USD",
        "-",
    ]
    assert lines[3].split()[:7] == [
        "vllm-a",
        "llama-3.1-8b",
        STARTED.isoformat(),
        "0.115741",
        "-",
        "0.925926",
        "USD",
    ]
    assert lines[3].endswith("2 GPU x 2.50/h, 12000 in + 1500 out tok/s")


def test_loading_the_same_file_twice_adds_nothing(
    config: Path, fresh_database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = ["--config", str(config)]
    path = price_file(tmp_path / "prices.yaml", OPENAI, INTERNAL)
    assert run(capsys, "prices", "load", str(path), *cfg)[0] == 0
    code, out, _ = run(capsys, "prices", "load", str(path), *cfg)
    assert code == 0
    assert out.splitlines() == [f"no new prices in {path}", "2 already stored, unchanged"]
    assert len(stored(fresh_database_url)) == 2
    assert load_records(fresh_database_url) == 1  # only a load that adds is recorded


def test_stored_prices_never_change_and_are_never_backdated(
    config: Path, fresh_database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = ["--config", str(config)]
    assert run(capsys, "prices", "load", str(price_file(tmp_path / "a.yaml", OPENAI)), *cfg)[0] == 0

    changed = price_file(tmp_path / "b.yaml", INTERNAL, {**OPENAI, "output": "0.65"})
    code, out, err = run(capsys, "prices", "load", str(changed), *cfg)
    assert code == 2 and out == ""
    assert (
        f"prices[1]: openai/gpt-4o-mini already has a different price from {STARTED}; "
        "stored prices never change: add a new price with a later effective_from"
    ) in err
    assert len(stored(fresh_database_url)) == 1  # all or nothing: INTERNAL was not added

    backdated = TODAY - dt.timedelta(days=3)
    earlier = price_file(
        tmp_path / "c.yaml", OPENAI, {**OPENAI, "effective_from": backdated, "output": "0.65"}
    )
    code, _, err = run(capsys, "prices", "load", str(earlier), *cfg)
    assert code == 2
    assert (
        "openai/gpt-4o-mini is already priced, so a new price cannot start in the past "
        f"({backdated}, today is {TODAY} UTC)"
    ) in err
    assert len(stored(fresh_database_url)) == 1

    later = TODAY + dt.timedelta(days=7)
    ahead = price_file(
        tmp_path / "d.yaml", OPENAI, {**OPENAI, "effective_from": later, "output": "0.65"}
    )
    code, out, _ = run(capsys, "prices", "load", str(ahead), *cfg)
    assert code == 0 and out.startswith("added 1 prices") and "1 already stored" in out
    assert [r.effective_from for r in stored(fresh_database_url)] == [STARTED, later]


def test_load_refuses_what_the_configuration_does_not_serve(
    config: Path, fresh_database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = ["--config", str(config)]
    typo = price_file(tmp_path / "typo.yaml", {**OPENAI, "model": "gpt-4o-mnii"})
    code, _, err = run(capsys, "prices", "load", str(typo), *cfg)
    assert code == 2 and "no deployment serves 'gpt-4o-mnii' at upstream 'openai'" in err
    euros = price_file(tmp_path / "eur.yaml", OPENAI, currency="EUR")
    code, _, err = run(capsys, "prices", "load", str(euros), *cfg)
    assert code == 2 and "prices are in EUR but spend.currency is USD" in err
    code, _, err = run(capsys, "prices", "load", str(tmp_path / "missing.yaml"), *cfg)
    assert code == 2 and "cannot read the price file" in err
    assert stored(fresh_database_url) == []


def test_loading_needs_prices_manage_and_listing_spend_read(
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = ["--config", str(config)]
    keys = {}
    for name, role in (("ops", "sre"), ("author", "policy_author"), ("money", "finance")):
        assert main(["principals", "create", name, "--role", role, *cfg]) == 0
        assert main(["keys", "create", "--principal", name, *cfg]) == 0
        keys[name] = capsys.readouterr().out.strip().splitlines()[-1]
    path = str(price_file(tmp_path / "prices.yaml", OPENAI))

    monkeypatch.setenv(KEY_VARIABLE, keys["ops"])
    code, _, err = run(capsys, "prices", "load", path, *cfg)
    assert code == 2 and "ops (roles: sre) may not prices:manage" in err
    monkeypatch.setenv(KEY_VARIABLE, keys["money"])
    assert run(capsys, "prices", "load", path, *cfg)[0] == 0
    monkeypatch.setenv(KEY_VARIABLE, keys["ops"])
    code, out, _ = run(capsys, "prices", "list", *cfg)
    assert code == 0 and "gpt-4o-mini" in out
    monkeypatch.setenv(KEY_VARIABLE, keys["author"])
    code, _, err = run(capsys, "prices", "list", *cfg)
    assert code == 2 and "author (roles: policy_author) may not spend:read" in err
