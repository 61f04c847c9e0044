"""Pseudonymisation round trips, and restoring placeholders split across stream chunks."""

from __future__ import annotations

import itertools
import json

from hypothesis import given
from hypothesis import strategies as st

from governance.pii import Finding
from governance.pii.redact import Pseudonyms, mask_all, non_overlapping, replace, restore
from governance.pii.restore import StreamRestorer


def _table(*values: tuple[str, str]) -> Pseudonyms:
    table = Pseudonyms()
    for entity, value in values:
        table.placeholder(entity, value)
    return table


def test_same_value_same_placeholder_numbered_per_type() -> None:
    table = Pseudonyms()
    assert table.placeholder("PERSON", "Ada Byron") == "<PERSON_1>"
    assert table.placeholder("PERSON", "Alan Turing") == "<PERSON_2>"
    assert table.placeholder("PERSON", "Ada Byron") == "<PERSON_1>"
    assert table.placeholder("EMAIL_ADDRESS", "ada@example.org") == "<EMAIL_ADDRESS_1>"
    assert table.original("<PERSON_2>") == "Alan Turing"
    assert table.original("<PERSON_3>") is None


def test_replace_resolves_overlaps_towards_the_longer_finding() -> None:
    text = "write to ada@example.org now"
    findings = [Finding("URL", 13, 24, 0.5), Finding("EMAIL_ADDRESS", 9, 24, 0.9)]
    assert [f.entity_type for f in non_overlapping(findings)] == ["EMAIL_ADDRESS"]
    assert mask_all(text, findings) == "write to <EMAIL_ADDRESS> now"


def test_pseudonymise_then_restore_round_trips() -> None:
    text = "Ada Byron met Alan Turing; Ada Byron left."
    findings = [
        Finding("PERSON", 0, 9, 0.9),
        Finding("PERSON", 14, 25, 0.9),
        Finding("PERSON", 27, 36, 0.9),
    ]
    table = Pseudonyms()
    redacted = replace(text, findings, lambda f, v: table.placeholder(f.entity_type, v))
    assert redacted == "<PERSON_1> met <PERSON_2>; <PERSON_1> left."
    assert restore(redacted, table) == text


def test_unknown_placeholders_and_lone_brackets_pass_through() -> None:
    table = _table(("PERSON", "Ada"))
    restorer = StreamRestorer(table)
    out = (
        restorer.feed("a < b and <PERSON_9> and <PERS") + restorer.feed("ON_1>!") + restorer.flush()
    )
    assert out == "a < b and <PERSON_9> and Ada!"
    restorer = StreamRestorer(table)
    assert restorer.feed("ends with <PERSON_") + restorer.flush() == "ends with <PERSON_"


def test_values_restored_into_json_arguments_are_escaped() -> None:
    table = _table(("PERSON", 'Ada "the Countess" Byron'))
    restorer = StreamRestorer(table, escape=lambda v: json.dumps(v)[1:-1])
    args = restorer.feed('{"who": "<PER') + restorer.feed('SON_1>"}') + restorer.flush()
    assert json.loads(args) == {"who": 'Ada "the Countess" Byron'}


_values = st.text(alphabet="abcdefXYZ <>_!é", min_size=1, max_size=12)
_filler = st.text(alphabet="abc <>_1PERSON", max_size=15)


@given(
    values=st.lists(_values, min_size=1, max_size=4, unique=True),
    layout=st.lists(st.tuples(_filler, st.integers(0, 3)), min_size=1, max_size=8),
    cuts=st.lists(st.integers(0, 200), max_size=12),
)
def test_stream_restore_equals_whole_restore_for_any_chunking(
    values: list[str], layout: list[tuple[str, int]], cuts: list[int]
) -> None:
    table = Pseudonyms()
    placeholders = [table.placeholder("PERSON", v) for v in values]
    text = "".join(f + placeholders[i % len(placeholders)] for f, i in layout)
    bounds = sorted({0, len(text), *(c for c in cuts if c < len(text))})
    restorer = StreamRestorer(table)
    out = ""
    for start, end in itertools.pairwise(bounds):
        out += restorer.feed(text[start:end])
        # Hold-back never exceeds what one placeholder needs.
        assert restorer.holding < table.longest
    out += restorer.flush()
    assert out == restore(text, table)
    assert all(p not in out for p in placeholders)
