"""The statistics the drift decision rests on, beside the ones Evidently computes.

- `holm`: Holm's step-down correction. A run tests a dozen or more signals; an alert
  means "something changed", so what must be bounded is the chance that *any* signal of
  a run fires on stable traffic (the family-wise error rate), not the share of false
  alerts among many (Benjamini-Hochberg's false discovery rate, which suits screening
  hundreds of hypotheses). Holm bounds it at alpha under any dependence between the
  signals (output tokens, response length and latency move together) and is uniformly
  more powerful than Bonferroni.
- `two_proportions`: the pooled two-proportion z-test, with `cohens_h` as the effect
  (the difference of arcsine-square-root transformed proportions: 0.2 small, 0.5 medium).
- `mmd_test`: the kernel two-sample test on embeddings: unbiased MMD² with an RBF kernel
  whose bandwidth is the median pairwise distance, p-value by permutation (exact under
  the null whatever the dimension, unlike a asymptotic approximation at a few hundred
  points).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitors.proportions import cohens_h, two_proportion_test


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (monotone, capped at 1), in the input's order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        p = p_values[index]
        value = 1.0 if math.isnan(p) else min(1.0, (m - rank) * p)
        running = max(running, value)
        adjusted[index] = running
    return adjusted


@dataclass(frozen=True, slots=True)
class ProportionTest:
    p_value: float
    effect: float
    reference: float
    current: float


def two_proportions(
    hits_reference: int, n_reference: int, hits_current: int, n_current: int
) -> ProportionTest:
    """Two-sided pooled z-test of equal proportions, with Cohen's h.

    When both windows have no hits, or only hits, nothing can have changed: p = 1.
    """
    if n_reference <= 0 or n_current <= 0:
        raise ValueError("both windows need at least one observation")
    p1, p2 = hits_reference / n_reference, hits_current / n_current
    _, p_value = two_proportion_test(hits_reference, n_reference, hits_current, n_current)
    return ProportionTest(p_value, cohens_h(p1, p2), p1, p2)


@dataclass(frozen=True, slots=True)
class MmdTest:
    mmd2: float  # unbiased estimate; can be slightly negative under the null
    p_value: float
    bandwidth: float


def _sq_distances(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    squared = np.sum(z * z, axis=1)
    d2 = squared[:, None] + squared[None, :] - 2.0 * (z @ z.T)
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    return np.asarray(d2, dtype=np.float64)


def mmd_test(
    x: npt.NDArray[np.floating], y: npt.NDArray[np.floating], *, permutations: int, seed: int
) -> MmdTest:
    """Kernel two-sample test of ``x`` (reference rows) against ``y`` (current rows).

    The statistic for a split (first m rows vs the rest) is the unbiased MMD²:
    mean K_xx (off-diagonal) + mean K_yy (off-diagonal) - 2 mean K_xy. All permutations
    are evaluated at once as quadratic forms of the kernel matrix.
    """
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError("the MMD test needs at least two rows on each side")
    z = np.vstack([x, y]).astype(np.float64)
    d2 = _sq_distances(z)
    off_diagonal = d2[np.triu_indices(m + n, k=1)]
    median = float(np.median(off_diagonal))
    if median <= 0:  # every text identical: no spread to measure a change against
        return MmdTest(0.0, 1.0, 0.0)
    kernel = np.exp(-d2 / median)
    np.fill_diagonal(kernel, 0.0)  # the unbiased statistic drops i == j terms

    def statistic(labels: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        """Unbiased MMD² for each column of ``labels`` (True: the row is in x)."""
        wx = labels.astype(np.float64)
        wy = 1.0 - wx
        kx, ky = kernel @ wx, kernel @ wy
        xx = np.sum(wx * kx, axis=0) / (m * (m - 1))
        yy = np.sum(wy * ky, axis=0) / (n * (n - 1))
        xy = np.sum(wx * ky, axis=0) / (m * n)
        return np.asarray(xx + yy - 2.0 * xy, dtype=np.float64)

    observed_labels = np.zeros((m + n, 1), dtype=bool)
    observed_labels[:m] = True
    observed = float(statistic(observed_labels)[0])
    rng = np.random.default_rng(seed)
    exceed = 0
    done = 0
    while done < permutations:
        chunk = min(256, permutations - done)
        labels = np.zeros((m + n, chunk), dtype=bool)
        for column in range(chunk):
            labels[rng.permutation(m + n)[:m], column] = True
        exceed += int(np.sum(statistic(labels) >= observed))
        done += chunk
    return MmdTest(observed, (exceed + 1) / (permutations + 1), math.sqrt(median))
