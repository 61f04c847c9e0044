"""Two-sample tests that tell whether a watched model changed between two canary batches.

A canary batch is N sampled completions for each of a fixed set of prompts, taken with fixed
request parameters. Under "no change" the baseline and current completions of one prompt are
exchangeable, so a permutation test that shuffles the baseline/current labels *within each
prompt* (prompt-stratified) has an exact level whatever the statistic. Tollhouse's detector
(:func:`change_test`) computes several statistics on the same permutations and combines their
permutation p-values (non-parametric combination, Pesarin 2001): the combined p-value is itself
ranked within the permutation distribution, so the level stays exact while every statistic
gets a chance to fire. The reference method (:func:`mmd_hamming_test`) is the MMD test with a
Hamming kernel on characters of Gao, Liang & Guestrin, "Model Equality Testing" (ICLR 2025).

Statistics, each summed over prompts (a kernel or difference is never taken across prompts):

* ``mmd_hamming`` - unbiased MMD^2 with the normalised Hamming kernel (see :func:`hamming_gram`);
* ``char_freq`` - squared distance between the mean character-frequency vectors (linear-kernel
  MMD); it sees changes in *which* characters appear regardless of their position;
* ``length`` - |sum of per-prompt standardised differences in mean response length|;
* ``mean_logprob`` - the same for the mean logprob of the sampled tokens: sampling at a higher
  temperature, or a different model, picks tokens the served model finds less likely. Only when
  every sample of both batches carries ``token_logprobs``;
* ``first_token`` - squared distance between the mean top-k logprob vectors of the first
  position (Chauvin et al. 2025): any change of weights moves these, while sampling
  parameters do not. Only when every sample of both batches carries ``top_logprobs``;
* ``first_token_spread`` - the same standardised difference as ``length``, for each sample's
  distance from the prompt's pooled median top-k vector: catches a provider that serves only a
  share of the requests from another model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

FloatArray = npt.NDArray[np.float64]

HAMMING_LENGTH = 50
"""Characters compared by the Hamming kernel. Completions are truncated to this length and
shorter ones padded with a padding symbol that matches only itself, so a difference in length
(up to 50 characters) also counts. Canary completions are short (a few dozen tokens); the
first characters carry most of the signal and bound the cost."""

_TIE_ATOL = 1e-12
_TIE_RTOL = 1e-9


@dataclass(frozen=True)
class CanarySample:
    """One sampled completion of one canary prompt, with the logprobs the upstream returned."""

    prompt_id: str
    text: str
    token_logprobs: tuple[float, ...] | None = None
    top_logprobs: tuple[tuple[str, float], ...] | None = None


@dataclass(frozen=True)
class ChangeTest:
    """Outcome of one baseline-versus-current test; a small ``p_value`` means "changed"."""

    method: str
    p_value: float
    statistic: float
    components: dict[str, float]
    prompts: int
    baseline_samples: int
    current_samples: int


@dataclass(frozen=True)
class _Stratum:
    """The baseline and current samples of one prompt."""

    baseline: tuple[CanarySample, ...]
    current: tuple[CanarySample, ...]

    @property
    def pooled(self) -> tuple[CanarySample, ...]:
        return self.baseline + self.current


def _strata(baseline: Sequence[CanarySample], current: Sequence[CanarySample]) -> list[_Stratum]:
    """Group both batches by prompt, keeping the prompts they share, in a fixed order."""
    by_prompt: dict[str, tuple[list[CanarySample], list[CanarySample]]] = {}
    for sample in baseline:
        by_prompt.setdefault(sample.prompt_id, ([], []))[0].append(sample)
    for sample in current:
        by_prompt.setdefault(sample.prompt_id, ([], []))[1].append(sample)
    common = sorted(pid for pid, (xs, ys) in by_prompt.items() if xs and ys)
    if len(common) < 2:
        raise ValueError(
            f"the batches share {len(common)} prompt(s); a canary test needs at least 2 prompts "
            "present in both the baseline and the current batch"
        )
    strata = []
    for pid in common:
        xs, ys = by_prompt[pid]
        if len(xs) < 2 or len(ys) < 2:
            raise ValueError(
                f"prompt {pid!r} has {len(xs)} baseline and {len(ys)} current sample(s); "
                "every shared prompt needs at least 2 samples in each batch"
            )
        strata.append(_Stratum(tuple(xs), tuple(ys)))
    return strata


def hamming_gram(texts: Sequence[str], length: int = HAMMING_LENGTH) -> FloatArray:
    """Kernel matrix k(x, y) = (1/L) * #{i < L : x[i] == y[i]} after padding/truncating to L.

    Positive definite (a sum of per-position indicator kernels), 1 on the diagonal.
    """
    codes = np.full((len(texts), length), -1, dtype=np.int64)
    for row, text in enumerate(texts):
        head = _codepoints(text[:length])
        codes[row, : head.size] = head
    matches = codes[:, None, :] == codes[None, :, :]
    gram: FloatArray = matches.mean(axis=2, dtype=np.float64)
    return gram


def _codepoints(text: str) -> npt.NDArray[np.uint32]:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def _labels(n: int, m: int, permutations: int, rng: np.random.Generator) -> FloatArray:
    """Baseline indicators: row 0 is the observed split, the rest random within-prompt shuffles."""
    rows = np.zeros((permutations + 1, n + m))
    rows[:, :n] = 1.0
    rows[1:] = rng.permuted(rows[1:], axis=1)
    return rows


def _mmd(labels: FloatArray, gram: FloatArray, n: int, m: int) -> FloatArray:
    """Unbiased MMD^2 for every labelling at once (each row of ``labels`` marks the baseline)."""
    q = np.einsum("bi,bi->b", labels @ gram, labels)
    r = labels @ gram.sum(axis=1)
    total = gram.sum()
    diag = np.diag(gram)
    dx = labels @ diag
    dy = diag.sum() - dx
    xx = (q - dx) / (n * (n - 1))
    yy = (total - 2.0 * r + q - dy) / (m * (m - 1))
    xy = (r - q) / (n * m)
    result: FloatArray = xx + yy - 2.0 * xy
    return result


def _mean_gap(labels: FloatArray, features: FloatArray, n: int, m: int) -> FloatArray:
    """Baseline mean minus current mean of per-sample features, for every labelling.

    ``features`` is (samples, dims); the result is (labellings, dims). Features are centred on
    their pooled mean first so that identical features give exactly tied statistics.
    """
    centred = features - features.mean(axis=0)
    sums = labels @ centred
    gap: FloatArray = sums / n - (centred.sum(axis=0) - sums) / m
    return gap


def _char_freq(texts: Sequence[str]) -> FloatArray:
    """Per-text character frequency vectors over the characters seen in ``texts``."""
    lengths = np.array([len(t) for t in texts])
    _, symbol = np.unique(_codepoints("".join(texts)), return_inverse=True)
    width = int(symbol.max()) + 1 if symbol.size else 1
    row = np.repeat(np.arange(len(texts)), lengths)
    counts = np.bincount(row * width + symbol, minlength=len(texts) * width)
    freq: FloatArray = counts.reshape(len(texts), width) / np.maximum(lengths, 1)[:, None]
    return freq


def _first_token(samples: Sequence[CanarySample]) -> FloatArray:
    """First-position top-k logprob vectors over the union of the tokens listed.

    A token missing from a sample's list is given that list's smallest logprob: an upper bound
    on its true logprob, the best the response tells us.
    """
    tops = [dict(s.top_logprobs or ()) for s in samples]
    vocab = sorted(set().union(*tops))
    out = np.zeros((len(samples), max(len(vocab), 1)))
    for row, top in enumerate(tops):
        floor = min(top.values(), default=0.0)
        out[row, : len(vocab)] = [top.get(tok, floor) for tok in vocab]
    return out


def _first_token_spread(samples: Sequence[CanarySample]) -> FloatArray:
    """Each sample's L1 distance from the prompt's pooled coordinate-wise median top-k vector.

    The median is taken over both batches, so the score does not depend on the labels. A
    provider routing a share of requests to another model leaves the baseline on the median
    and puts the odd ones out in the current batch; with a few samples per prompt the
    mean-vector gap of one odd sample is the same whichever side it is on, but "the odd ones
    are all on the current side" adds up over prompts.
    """
    vectors = _first_token(samples)
    spread: FloatArray = np.abs(vectors - np.median(vectors, axis=0)).sum(axis=1, keepdims=True)
    return spread


def _mean_logprob(sample: CanarySample) -> float:
    lps = sample.token_logprobs or ()
    return math.fsum(lps) / len(lps) if lps else 0.0


_Stat = Callable[[_Stratum, FloatArray], FloatArray]


def _vector_stat(featurise: Callable[[Sequence[CanarySample]], FloatArray]) -> _Stat:
    """Per-prompt squared distance between the mean feature vectors of the two batches."""

    def stat(stratum: _Stratum, labels: FloatArray) -> FloatArray:
        gap = _mean_gap(
            labels, featurise(stratum.pooled), len(stratum.baseline), len(stratum.current)
        )
        result: FloatArray = np.einsum("bd,bd->b", gap, gap)
        return result

    return stat


def _scalar_z(feature: Callable[[CanarySample], float]) -> _Stat:
    """Per-prompt difference in means of a scalar, in units of the prompt's pooled SD.

    The pooled SD does not depend on the labelling, so it is computed once. Summed over prompts
    (and made absolute afterwards), a consistent shift in one direction adds up.
    """

    def stat(stratum: _Stratum, labels: FloatArray) -> FloatArray:
        values = np.array([[feature(s)] for s in stratum.pooled])
        scale = float(values.std())
        gap = _mean_gap(labels, values, len(stratum.baseline), len(stratum.current))[:, 0]
        result: FloatArray = gap / scale if scale > 0.0 else np.zeros_like(gap)
        return result

    return stat


def _scalar_z_features(featurise: Callable[[Sequence[CanarySample]], FloatArray]) -> _Stat:
    """As :func:`_scalar_z`, for a score computed from the prompt's pooled samples together."""

    def stat(stratum: _Stratum, labels: FloatArray) -> FloatArray:
        values = featurise(stratum.pooled)
        scale = float(values.std())
        gap = _mean_gap(labels, values, len(stratum.baseline), len(stratum.current))[:, 0]
        result: FloatArray = gap / scale if scale > 0.0 else np.zeros_like(gap)
        return result

    return stat


def _mmd_hamming(stratum: _Stratum, labels: FloatArray) -> FloatArray:
    gram = hamming_gram([s.text for s in stratum.pooled])
    return _mmd(labels, gram, len(stratum.baseline), len(stratum.current))


# name -> (per-prompt statistic, whether the prompt sum is taken in absolute value)
_STATISTICS: dict[str, tuple[_Stat, bool]] = {
    "mmd_hamming": (_mmd_hamming, False),
    "char_freq": (_vector_stat(lambda ss: _char_freq([s.text for s in ss])), False),
    "length": (_scalar_z(lambda s: float(len(s.text))), True),
    "mean_logprob": (_scalar_z(_mean_logprob), True),
    "first_token": (_vector_stat(_first_token), False),
    "first_token_spread": (_scalar_z_features(_first_token_spread), True),
}


def _permutation_values(
    strata: Sequence[_Stratum], names: Sequence[str], permutations: int, rng: np.random.Generator
) -> FloatArray:
    """(statistics, permutations + 1) matrix; column 0 is observed, all share the shuffles."""
    values = np.zeros((len(names), permutations + 1))
    for stratum in strata:
        labels = _labels(len(stratum.baseline), len(stratum.current), permutations, rng)
        for row, name in enumerate(names):
            values[row] += _STATISTICS[name][0](stratum, labels)
    for row, name in enumerate(names):
        if _STATISTICS[name][1]:
            values[row] = np.abs(values[row])
    return values


def _upper_tail_p(values: FloatArray) -> FloatArray:
    """p(b) = share of the permutation distribution (observed included) at or above value b.

    Values within a tiny tolerance count as ties, so rounding noise never breaks a tie.
    """
    ordered = np.sort(values)
    slack = _TIE_ATOL + _TIE_RTOL * np.abs(values)
    below = np.searchsorted(ordered, values - slack, side="left")
    result: FloatArray = (values.size - below) / values.size
    return result


def _combine(values: FloatArray, how: Literal["fisher", "min"]) -> tuple[float, float, FloatArray]:
    """Combine statistics ranked on the same permutations: (p, observed statistic, component ps)."""
    p_all = np.vstack([_upper_tail_p(row) for row in values])
    combined = -np.log(p_all).sum(axis=0) if how == "fisher" else -p_all.min(axis=0)
    p = float(_upper_tail_p(combined)[0])
    statistic = float(combined[0]) if how == "fisher" else float(-combined[0])
    return p, statistic, p_all[:, 0]


def _has(samples: Sequence[CanarySample], field: str) -> bool:
    return all(getattr(s, field) is not None for s in samples)


def _check_permutations(permutations: int) -> None:
    if permutations < 1:
        raise ValueError(f"permutations must be at least 1, got {permutations}")


def change_test(
    baseline: Sequence[CanarySample],
    current: Sequence[CanarySample],
    *,
    permutations: int = 1000,
    rng: np.random.Generator,
    combine: Literal["fisher", "min"] = "min",
) -> ChangeTest:
    """Tollhouse's detector: text statistics, plus logprob statistics when both batches carry them.

    The logprob statistics are used only when every sample of *both* batches has the field, so
    a baseline taken without logprobs is still comparable. ``combine`` is the minimum p
    (default: a single decisive statistic, such as moved first-token logprobs, is not diluted
    by the others) or Fisher's -sum(log p) (better when several weak signals add up).
    """
    _check_permutations(permutations)
    strata = _strata(baseline, current)
    names = ["mmd_hamming", "char_freq", "length"]
    pooled = [s for stratum in strata for s in stratum.pooled]
    if _has(pooled, "token_logprobs"):
        names.append("mean_logprob")
    if _has(pooled, "top_logprobs"):
        names += ["first_token", "first_token_spread"]
    values = _permutation_values(strata, names, permutations, rng)
    p, statistic, component_ps = _combine(values, combine)
    return ChangeTest(
        method="tollhouse-combined",
        p_value=p,
        statistic=statistic,
        components={name: float(cp) for name, cp in zip(names, component_ps, strict=True)},
        prompts=len(strata),
        baseline_samples=sum(len(s.baseline) for s in strata),
        current_samples=sum(len(s.current) for s in strata),
    )


def mmd_hamming_test(
    baseline: Sequence[CanarySample],
    current: Sequence[CanarySample],
    *,
    permutations: int = 1000,
    rng: np.random.Generator,
) -> ChangeTest:
    """The reference method alone: prompt-stratified permutation test of MMD-Hamming."""
    _check_permutations(permutations)
    strata = _strata(baseline, current)
    values = _permutation_values(strata, ["mmd_hamming"], permutations, rng)
    p = float(_upper_tail_p(values[0])[0])
    return ChangeTest(
        method="mmd-hamming",
        p_value=p,
        statistic=float(values[0, 0]),
        components={"mmd_hamming": p},
        prompts=len(strata),
        baseline_samples=sum(len(s.baseline) for s in strata),
        current_samples=sum(len(s.current) for s in strata),
    )


def length_ks_test(baseline: Sequence[CanarySample], current: Sequence[CanarySample]) -> ChangeTest:
    """Kolmogorov-Smirnov test on response length, pooled over the shared prompts.

    A cheap baseline to compare against: it ignores the prompt structure and the content.
    """
    strata = _strata(baseline, current)
    xs = [len(s.text) for stratum in strata for s in stratum.baseline]
    ys = [len(s.text) for stratum in strata for s in stratum.current]
    result = sps.ks_2samp(xs, ys)
    p = float(result.pvalue)
    return ChangeTest(
        method="length-ks",
        p_value=p,
        statistic=float(result.statistic),
        components={"ks_length": p},
        prompts=len(strata),
        baseline_samples=len(xs),
        current_samples=len(ys),
    )
