"""``tollhouse spend report`` as finance runs it: CSV that a spreadsheet imports as-is and
that parses back to the exact figures, a table with a total, and the spend:read check."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from governance.db import make_engine
from tests.governance.test_spend_report import (
    Completed,
    expected_lines,
    seed,
    synthetic_records,
)
from tollhouse.cli import main
from tollhouse.commands.context import KEY_VARIABLE

TODAY = dt.datetime.now(dt.UTC).date()
FIRST_DAY = TODAY - dt.timedelta(days=45)
HEADER = [
    "team",
    "requests",
    "succeeded",
    "estimated",
    "unpriced",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "cost",
    "currency",
]
COUNTS = HEADER[1:-2]


def records() -> list[Completed]:
    """Synthetic traffic over the last 46 days, plus a team whose name needs quoting."""
    base = synthetic_records(FIRST_DAY, 46)
    at = dt.datetime.combine(TODAY - dt.timedelta(days=2), dt.time(9), dt.UTC)
    quoted = Completed(
        at, "web", 'Équipe "nord", ops', "m", "u", "x", "external", 7, 2, 3, None, None
    )
    return [
        *base,
        replace(quoted, cost=Decimal("0.000000000001"), currency="USD"),
        replace(quoted, cost=Decimal("123.456789012345"), currency="USD"),
    ]


@pytest.fixture
def seeded(fresh_database_url: str, tmp_path: Path) -> tuple[Path, list[Completed]]:
    engine = make_engine(fresh_database_url)
    data = records()
    seed(engine, data)
    engine.dispose()
    path = tmp_path / "tollhouse.yaml"
    path.write_text(yaml.safe_dump({"database_url": fresh_database_url}))
    return path, data


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    printed = capsys.readouterr()
    return code, printed.out, printed.err


def parsed(text: str) -> dict[tuple[str, ...], dict[str, object]]:
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    return {
        (row["team"],): {
            **{name: int(row[name]) for name in COUNTS},
            "cost": Decimal(row["cost"]),
            "currency": row["currency"],
        }
        for row in rows
    }


def test_csv_parses_back_to_the_exact_figures(
    seeded: tuple[Path, list[Completed]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, data = seeded
    since, until = FIRST_DAY + dt.timedelta(days=5), TODAY - dt.timedelta(days=1)
    args = ["spend", "report", "--by", "team", "--format", "csv", "--config", str(config)]
    code, out, err = run(capsys, *args, "--since", since.isoformat(), "--until", until.isoformat())
    assert code == 0, err
    expected = expected_lines(data, "team", since, until)
    assert parsed(out) == expected
    assert len(expected) == 4  # three teams, "(none)", and the quoted one
    lines = out.split("\r\n")
    assert lines[0] == ",".join(HEADER) and lines[-1] == ""  # CRLF after every row
    assert "\n" not in out.replace("\r\n", "")
    assert len(lines) == len(expected) + 2  # header, rows, nothing else: no totals row
    assert not any(line.startswith("TOTAL") for line in lines)
    assert '"Équipe ""nord"", ops"' in out  # RFC 4180 quoting
    costs = [row["cost"] for row in csv.DictReader(io.StringIO(out, newline=""))]
    assert all(re.fullmatch(r"\d+(\.\d+)?", cost) for cost in costs), costs  # no exponent, no $
    assert "123.456789012346" in out  # 0.000000000001 + 123.456789012345, to the last place


def test_csv_to_a_file_is_utf8_with_crlf(
    seeded: tuple[Path, list[Completed]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, data = seeded
    target = tmp_path / "spend.csv"
    code, out, _ = run(
        capsys,
        *("spend", "report", "--by", "team", "--since", "30d", "--format", "csv"),
        *("-o", str(target), "--config", str(config)),
    )
    assert code == 0 and out == ""
    raw = target.read_bytes()
    assert raw.startswith(b"team,requests,") and raw.endswith(b"\r\n")
    assert "Équipe".encode() in raw
    text = raw.decode("utf-8")
    assert parsed(text) == expected_lines(data, "team", TODAY - dt.timedelta(days=30), None)


def test_since_a_duration_counts_back_from_today(
    seeded: tuple[Path, list[Completed]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, data = seeded
    code, out, _ = run(
        capsys,
        "spend",
        "report",
        "--by",
        "model",
        "--since",
        "30d",
        "--format",
        "csv",
        "--config",
        str(config),
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    expected = expected_lines(data, "model", TODAY - dt.timedelta(days=30), None)
    assert {(r["model"],): Decimal(r["cost"]) for r in rows} == {
        key: line["cost"] for key, line in expected.items()
    }
    assert sum(int(r["requests"]) for r in rows) < len(data)  # older days left out
    code, out, _ = run(
        capsys, "spend", "report", "--by", "model", "--since", "2h", "--config", str(config)
    )
    assert (
        code == 0 and f"UTC days {(dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).date()}" in out
    )


def test_table_has_aligned_columns_and_a_total(
    seeded: tuple[Path, list[Completed]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, data = seeded
    code, out, _ = run(
        capsys,
        "spend",
        "report",
        "--by",
        "upstream",
        "--since",
        FIRST_DAY.isoformat(),
        "--config",
        str(config),
    )
    assert code == 0
    lines = out.rstrip("\n").splitlines()
    assert lines[0].startswith("spend by upstream, UTC days")
    table = lines[2:]
    header = table[0].split()
    assert header[:3] == ["upstream", "deployment_model", "requests"] and header[-2:] == [
        "cost",
        "currency",
    ]
    rules = [i for i, line in enumerate(table) if set(line) <= {"-", " "}]
    assert rules == [1, len(table) - 2]  # under the header, above the total
    total = table[-1].split()
    assert total[0] == "TOTAL" and total[-1] == "USD"
    assert Decimal(total[-2]) == sum((r.cost or Decimal(0) for r in data), Decimal(0))
    assert int(total[1]) == len(data)
    # costs are right-aligned on a common number of decimals
    cost_end = table[0].index("cost") + len("cost")
    width = {len(line.rsplit(maxsplit=1)[0]) for line in table[2:] if not set(line) <= {"-", " "}}
    assert width == {cost_end}
    assert "(none)" in out


def test_reading_spend_needs_spend_read(
    seeded: tuple[Path, list[Completed]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config, _ = seeded
    cfg = ["--config", str(config)]
    keys = {}
    for name, role in (("author", "policy_author"), ("money", "finance")):
        assert main(["principals", "create", name, "--role", role, *cfg]) == 0
        assert main(["keys", "create", "--principal", name, *cfg]) == 0
        keys[name] = capsys.readouterr().out.strip().splitlines()[-1]
    monkeypatch.setenv(KEY_VARIABLE, keys["author"])
    code, out, err = run(capsys, "spend", "report", "--by", "app", "--since", "7d", *cfg)
    assert code == 2 and out == ""
    assert "author (roles: policy_author) may not spend:read" in err
    monkeypatch.setenv(KEY_VARIABLE, keys["money"])
    code, out, err = run(capsys, "spend", "report", "--by", "app", "--since", "7d", *cfg)
    assert code == 0 and "TOTAL" in out, err


def test_bad_arguments_are_refused(
    seeded: tuple[Path, list[Completed]], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = seeded
    cfg = ["--config", str(config)]
    with pytest.raises(SystemExit):
        main(["spend", "report", "--by", "team", "--since", "last week", *cfg])
    assert "not a duration or a date: 'last week'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["spend", "report", "--by", "key", "--since", "7d", *cfg])
    assert "invalid choice: 'key'" in capsys.readouterr().err
    code, _, err = run(
        capsys,
        "spend",
        "report",
        "--by",
        "team",
        "--since",
        "2026-03-02",
        "--until",
        "2026-03-01",
        *cfg,
    )
    assert code == 2 and "until (2026-03-01) is before since (2026-03-02)" in err
