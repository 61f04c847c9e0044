"""Counting tokens when an upstream reports none: its tokenizer, or the estimate."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from governance.errors import ConfigError
from governance.spend.tokens import estimate_tokens, token_counter


def _save(path: Path, special_tokens: list[str]) -> Path:
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=40, special_tokens=special_tokens)
    tokenizer.train_from_iterator(["apples and pears and apples"] * 10, trainer)
    tokenizer.save(str(path))
    return path


def test_counts_with_the_tokenizer_file(tmp_path: Path) -> None:
    counter = token_counter(str(_save(tmp_path / "t.json", ["[UNK]"])))
    assert counter.count("apples and pears") == 3  # whole words of its vocabulary
    assert counter.count("apples zebra") > 1  # unknown letters are [UNK] pieces


def test_a_failing_tokenizer_falls_back_to_the_estimate(tmp_path: Path) -> None:
    counter = token_counter(str(_save(tmp_path / "t.json", [])))  # no [UNK] to fall on
    assert counter.count("zebra crossing") == estimate_tokens("zebra crossing")


def test_an_unreadable_file_stops_start_up(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not a tokenizer")
    with pytest.raises(ConfigError, match=r"not a readable tokenizer\.json"):
        token_counter(str(bad))
    assert token_counter(None).count("one, two") == 3
