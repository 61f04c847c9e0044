"""The canary change tests: exact level under no change, power on obvious changes, inputs."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import stats as sps

from monitors.canary.stats import (
    CanarySample,
    change_test,
    hamming_gram,
    length_ks_test,
    mmd_hamming_test,
)
from monitors.proportions import clopper_pearson, two_proportion_test

ALPHABET = np.array(list("abcdefgh ()=._"))


def _batch(
    rng: np.random.Generator,
    *,
    prompts: int = 4,
    samples: int = 5,
    alphabet: np.ndarray = ALPHABET,
    logprob_shift: float = 0.0,
    top_shift: float = 0.0,
    logprobs: bool = True,
) -> list[CanarySample]:
    """Synthetic completions: prompt-dependent character weights, random length and logprobs."""
    out = []
    for p in range(prompts):
        weights = np.linspace(1.0, 2.0 + p, alphabet.size)
        weights /= weights.sum()
        for _ in range(samples):
            size = int(rng.integers(5, 30))
            text = "".join(rng.choice(alphabet, size=size, p=weights))
            lps = tuple(rng.normal(-1.0 - logprob_shift, 0.4, size=size).tolist())
            top = tuple(
                (ch, -0.5 - 0.4 * i - p * 0.1 + top_shift + rng.normal(0, 0.01))
                for i, ch in enumerate("abcde")
            )
            out.append(
                CanarySample(f"p{p}", text, lps if logprobs else None, top if logprobs else None)
            )
    return out


def test_null_rejection_rate_is_at_most_alpha() -> None:
    rng = np.random.default_rng(2024)
    trials = 200
    p_combined, p_mmd = [], []
    for _ in range(trials):
        base, cur = _batch(rng), _batch(rng)
        p_combined.append(change_test(base, cur, permutations=99, rng=rng).p_value)
        p_mmd.append(mmd_hamming_test(base, cur, permutations=99, rng=rng).p_value)
    # Binomial(200, 0.05): P(X > 19) < 0.01; an exact test rejects at most 5 % on average.
    for ps in (p_combined, p_mmd):
        assert sum(p <= 0.05 for p in ps) <= 19
        assert 0.35 < float(np.mean(ps)) < 0.65  # roughly uniform, not stuck at 1
        assert sps.kstest(ps, "uniform").pvalue > 0.001


def test_obvious_change_is_detected_by_every_method() -> None:
    rng = np.random.default_rng(1)
    base = _batch(rng, prompts=5, samples=8)
    cur = _batch(rng, prompts=5, samples=8, alphabet=np.array(list("ABCDEFGH0123")))
    # min-p combination: each of the 6 statistics has its own most extreme permutation
    assert change_test(base, cur, rng=rng, permutations=200).p_value <= 7 / 201
    assert mmd_hamming_test(base, cur, rng=rng, permutations=200).p_value <= 1 / 201


def test_logprob_statistics_need_logprobs_on_both_sides() -> None:
    rng = np.random.default_rng(2)
    with_lp = _batch(rng)
    without = _batch(rng, logprobs=False)
    assert set(change_test(with_lp, without, rng=rng, permutations=50).components) == {
        "mmd_hamming",
        "char_freq",
        "length",
    }
    both = change_test(with_lp, _batch(rng), rng=rng, permutations=50)
    assert {"mean_logprob", "first_token"} <= set(both.components)


def test_logprob_shift_invisible_in_text_is_detected() -> None:
    rng = np.random.default_rng(3)
    base = _batch(rng, prompts=5, samples=8)
    cur = _batch(rng, prompts=5, samples=8, logprob_shift=0.3)
    result = change_test(base, cur, rng=rng, permutations=500)
    assert result.components["mean_logprob"] < 0.01
    assert result.p_value <= 7 / 501
    assert result.components["mmd_hamming"] > 0.01 or result.components["char_freq"] > 0.01


def test_first_token_shift_is_detected() -> None:
    rng = np.random.default_rng(4)
    base = _batch(rng, prompts=5, samples=8)
    cur = _batch(rng, prompts=5, samples=8, top_shift=0.05)
    result = change_test(base, cur, rng=rng, permutations=500)
    assert result.components["first_token"] <= 2 / 501
    assert result.p_value <= 7 / 501


def test_partial_substitution_is_caught_by_the_first_token_spread() -> None:
    """2 samples a prompt, one current sample in four from another model: no single prompt
    shows it, the sum over prompts does."""
    rng = np.random.default_rng(8)
    own = (("a", -0.2), ("b", -2.0))
    other = (("a", -0.3), ("b", -1.7))
    base = [CanarySample(f"p{i % 25}", "x", (-0.2,), own) for i in range(50)]
    cur = [
        CanarySample(f"p{i % 25}", "x", (-0.2,), other if i % 4 == 0 else own) for i in range(50)
    ]
    result = change_test(base, cur, rng=rng, permutations=500)
    assert result.components["first_token_spread"] <= 2 / 501
    assert result.p_value <= 7 / 501


def test_identical_first_token_lists_give_no_evidence() -> None:
    """Deterministic logprobs (the same top-k for every sample) must tie, never alarm."""
    rng = np.random.default_rng(5)
    top = (("a", -0.1), ("b", -2.5))
    base = [CanarySample(f"p{i % 3}", "x" * (i % 4 + 1), (-0.2,), top) for i in range(12)]
    cur = [CanarySample(f"p{i % 3}", "x" * (i % 4 + 1), (-0.2,), top) for i in range(12)]
    assert change_test(base, cur, rng=rng, permutations=100).components["first_token"] == 1.0


def test_result_fields_and_p_value_range() -> None:
    rng = np.random.default_rng(6)
    base = [*_batch(rng, prompts=3, samples=4), CanarySample("only-base", "zz")]
    cur = _batch(rng, prompts=3, samples=6)
    result = change_test(base, cur, rng=rng, permutations=99)
    assert result.method == "tollhouse-combined"
    assert (result.prompts, result.baseline_samples, result.current_samples) == (3, 12, 18)
    assert 1 / 100 <= result.p_value <= 1.0
    assert all(1 / 100 <= p <= 1.0 for p in result.components.values())
    ks = length_ks_test(base, cur)
    assert ks.method == "length-ks" and 0.0 <= ks.p_value <= 1.0


def test_fast_enough_for_a_full_canary_batch() -> None:
    rng = np.random.default_rng(7)
    base = _batch(rng, prompts=25, samples=10)
    cur = _batch(rng, prompts=25, samples=10)
    started = time.perf_counter()
    change_test(base, cur, rng=rng, permutations=1000)
    assert time.perf_counter() - started < 1.0


def test_hamming_kernel() -> None:
    gram = hamming_gram(["abcd", "abxd", "ab"], length=4)
    assert np.allclose(np.diag(gram), 1.0)
    assert gram[0, 1] == pytest.approx(0.75)
    assert gram[0, 2] == pytest.approx(0.5)  # padding matches only padding


def test_two_proportion_known_values() -> None:
    z, p = two_proportion_test(45, 100, 60, 100)
    assert z == pytest.approx(2.1239, abs=1e-3)
    assert p == pytest.approx(0.03367, abs=1e-4)
    assert two_proportion_test(0, 10, 0, 20) == (0.0, 1.0)


def test_clopper_pearson_known_values() -> None:
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 0.3085), abs=1e-4)
    assert clopper_pearson(5, 10) == pytest.approx((0.1871, 0.8129), abs=1e-4)
    assert clopper_pearson(10, 10)[1] == 1.0


@pytest.mark.parametrize(
    ("base", "cur", "message"),
    [
        ([CanarySample("a", "x")] * 3, [CanarySample("a", "y")] * 3, "at least 2 prompts"),
        (
            [CanarySample("a", "x"), CanarySample("b", "x"), CanarySample("b", "x")],
            [CanarySample("a", "y")] * 2 + [CanarySample("b", "y")] * 2,
            "prompt 'a' has 1 baseline",
        ),
    ],
)
def test_bad_batches_are_rejected(
    base: list[CanarySample], cur: list[CanarySample], message: str
) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=message):
        change_test(base, cur, rng=rng)
    with pytest.raises(ValueError, match=message):
        mmd_hamming_test(base, cur, rng=rng)


def test_bad_arguments_are_rejected() -> None:
    rng = np.random.default_rng(0)
    batch = _batch(rng)
    with pytest.raises(ValueError, match="permutations"):
        change_test(batch, batch, rng=rng, permutations=0)
    with pytest.raises(ValueError, match="k <= n"):
        clopper_pearson(3, 2)
    with pytest.raises(ValueError, match="sample b"):
        two_proportion_test(1, 10, 5, 0)
