"""Tests and intervals for proportions, shared by the drift and canary monitors: the
pooled two-proportion z-test, Cohen's h (its effect size) and the exact Clopper-Pearson
interval."""

from __future__ import annotations

import math

from scipy import stats as sps


def cohens_h(p1: float, p2: float) -> float:
    """|2·asin(√p2) - 2·asin(√p1)|: the effect size of a change of proportion."""
    return abs(2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1)))


def two_proportion_test(
    successes_a: int, n_a: int, successes_b: int, n_b: int
) -> tuple[float, float]:
    """Pooled two-proportion z-test for graded canaries: (z, two-sided p); z > 0 if b is higher.

    When both rates are 0 or both 1 there is no evidence of a difference: (0.0, 1.0).
    """
    for k, n, side in ((successes_a, n_a, "a"), (successes_b, n_b, "b")):
        if n <= 0 or not 0 <= k <= n:
            raise ValueError(f"sample {side}: need 0 <= successes <= n and n > 0, got {k}/{n}")
    pooled = (successes_a + successes_b) / (n_a + n_b)
    variance = pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b)
    if variance <= 0.0:
        return 0.0, 1.0
    z = (successes_b / n_b - successes_a / n_a) / math.sqrt(variance)
    return z, float(2.0 * sps.norm.sf(abs(z)))


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided 1 - alpha confidence interval for a binomial rate."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    lower = 0.0 if k == 0 else float(sps.beta.ppf(alpha / 2, k, n - k + 1))
    upper = 1.0 if k == n else float(sps.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lower, upper
