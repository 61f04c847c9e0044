"""Per-request signals derived from a window's frame, and their two-sample tests.

`derive` turns a `WindowFrame`'s rows into the signal columns (NaN where a request does
not contribute: latency, tokens, lengths and the finish reason count successful
requests only, so an error spike shows as the error rate and not as a latency change;
TTFT counts streams only). `test_columns`, `test_rates` and `test_embeddings` produce
`Tested` signals: raw p-value, effect size and summaries, before the run's correction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from monitors.drift import report
from monitors.drift.refusal import is_refusal
from monitors.drift.spec import PII_PREFIX, SIGNALS, DriftSpec, Kind
from monitors.drift.statistics import mmd_test, two_proportions

NUMERIC = ("prompt_tokens", "completion_tokens", "response_chars", "response_words",
           "latency_ms", "ttft_ms")  # fmt: skip
CATEGORICAL = ("finish_reason",)


@dataclass(frozen=True, slots=True)
class Tested:
    """One signal's test before the multiple-testing correction."""

    name: str
    kind: Kind
    p_value: float
    effect: float
    reference: dict[str, Any]
    current: dict[str, Any]
    evidently: dict[str, float] = field(default_factory=dict)


def derive(frame: pd.DataFrame) -> pd.DataFrame:
    """The signal columns of one window (see the module notes for who counts where)."""
    ok = frame["ok"].to_numpy(dtype=bool)
    response = frame["response"]
    has_text = ok & response.notna().to_numpy(dtype=bool)
    texts = response.where(has_text, "").astype(str)
    out = pd.DataFrame(index=frame.index)
    out["prompt_tokens"] = frame["input_tokens"].where(ok)
    out["completion_tokens"] = frame["output_tokens"].where(ok)
    out["response_chars"] = texts.str.len().astype(np.float64).where(has_text)
    out["response_words"] = texts.str.split().str.len().astype(np.float64).where(has_text)
    out["latency_ms"] = frame["latency_ms"].where(ok)
    out["ttft_ms"] = frame["ttft_ms"].where(ok & frame["stream"].to_numpy(dtype=bool))
    # A success without a finish reason is a category of its own ("none").
    out["finish_reason"] = frame["finish_reason"].fillna("none").where(ok).astype(object)
    out["error"] = frame["error"].astype(bool)
    out["refusal"] = pd.array(
        [is_refusal(t) if h else None for t, h in zip(texts, has_text, strict=True)],
        dtype="boolean",
    )
    return out


def numeric_summary(values: pd.Series) -> dict[str, Any]:
    clean = values.dropna()
    if clean.empty:
        return {"n": 0}
    return {
        "n": int(clean.size),
        "mean": float(clean.mean()),
        "median": float(clean.median()),
        "p95": float(clean.quantile(0.95)),
    }


def categorical_summary(values: pd.Series, top: int = 8) -> dict[str, Any]:
    clean = values.dropna()
    shares = clean.value_counts(normalize=True).head(top)
    return {"n": int(clean.size), "shares": {str(k): float(v) for k, v in shares.items()}}


def test_columns(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str],
    *,
    min_values: int,
    render: bool,
) -> tuple[list[Tested], dict[str, str], list[tuple[str, str]]]:
    """Numeric and categorical signals through Evidently: (tested, skipped, report pages)."""
    skipped: dict[str, str] = {}
    usable: list[str] = []
    for column in columns:
        n_ref, n_cur = int(reference[column].notna().sum()), int(current[column].notna().sum())
        if min(n_ref, n_cur) < min_values:
            skipped[column] = (
                f"too few values (reference {n_ref}, current {n_cur}; at least {min_values} "
                "each needed)"
            )
        else:
            usable.append(column)
    numeric = [c for c in usable if SIGNALS[c] is Kind.NUMERIC]
    categorical = [c for c in usable if SIGNALS[c] is Kind.CATEGORICAL]
    reference_frame = reference[usable].copy()
    current_frame = current[usable].copy()
    for column in categorical:
        reference_frame[column] = reference_frame[column].astype("string")
        current_frame[column] = current_frame[column].astype("string")
    scores = report.column_drift(
        reference_frame, current_frame, numeric, categorical, render=render
    )
    tested: list[Tested] = []
    for column in numeric:
        tested.append(
            Tested(
                column,
                Kind.NUMERIC,
                scores.values[(column, "ks")],
                scores.values[(column, "wasserstein")],
                numeric_summary(reference[column]),
                numeric_summary(current[column]),
            )
        )
    for column in categorical:
        tested.append(
            Tested(
                column,
                Kind.CATEGORICAL,
                scores.values[(column, "chisquare")],
                scores.values[(column, "jensenshannon")],
                categorical_summary(reference[column]),
                categorical_summary(current[column]),
            )
        )
    return tested, skipped, scores.pages


def _rate(name: str, ref_hits: int, ref_n: int, cur_hits: int, cur_n: int) -> Tested:
    result = two_proportions(ref_hits, ref_n, cur_hits, cur_n)
    return Tested(
        name,
        Kind.RATE,
        result.p_value,
        result.effect,
        {"n": ref_n, "hits": ref_hits, "proportion": result.reference},
        {"n": cur_n, "hits": cur_hits, "proportion": result.current},
    )


def test_rates(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    reference_pii: pd.Series,
    current_pii: pd.Series,
    spec: DriftSpec,
) -> tuple[list[Tested], dict[str, str]]:
    """Error rate (all requests), refusal rate (answers with stored text) and the share of
    requests with each PII entity type seen in either window."""
    tested: list[Tested] = []
    skipped: dict[str, str] = {}
    if spec.wants("error_rate"):
        tested.append(
            _rate(
                "error_rate",
                int(reference["error"].sum()),
                len(reference),
                int(current["error"].sum()),
                len(current),
            )
        )
    if spec.wants("refusal_rate"):
        ref_flags, cur_flags = reference["refusal"].dropna(), current["refusal"].dropna()
        if min(len(ref_flags), len(cur_flags)) < spec.min_values:
            skipped["refusal_rate"] = (
                f"too few answers with stored content (reference {len(ref_flags)}, "
                f"current {len(cur_flags)}; at least {spec.min_values} each needed)"
            )
        else:
            tested.append(
                _rate(
                    "refusal_rate",
                    int(ref_flags.sum()),
                    len(ref_flags),
                    int(cur_flags.sum()),
                    len(cur_flags),
                )
            )
    if spec.wants("pii_rate"):
        ref_types = _entity_presence(reference_pii)
        cur_types = _entity_presence(current_pii)
        entities = sorted(set(ref_types) | set(cur_types))
        if not entities:
            skipped["pii_rate"] = "no PII entities recorded in either window"
        for entity in entities:
            tested.append(
                _rate(
                    f"{PII_PREFIX}{entity}",
                    ref_types.get(entity, 0),
                    len(reference_pii),
                    cur_types.get(entity, 0),
                    len(current_pii),
                )
            )
    return tested, skipped


def _entity_presence(pii: pd.Series) -> dict[str, int]:
    """Requests with at least one finding, per entity type."""
    counts: dict[str, int] = {}
    for found in pii:
        if not isinstance(found, Mapping):
            continue
        for entity, count in found.items():
            if isinstance(count, int | float) and count > 0:
                counts[str(entity)] = counts.get(str(entity), 0) + 1
    return counts


def bottom_k(keys: Sequence[str], k: int, seed: int) -> list[int]:
    """Positions of the ``k`` keys with the smallest seeded hash: a uniform sample that is
    stable across overlapping windows (a request sampled in one window is sampled in the
    next one that holds it, unless crowded out), so the embedding cache keeps hitting."""
    if len(keys) <= k:
        return list(range(len(keys)))
    salt = seed.to_bytes(8, "big", signed=True)
    ranks = [
        int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8, salt=salt).digest())
        for key in keys
    ]
    return sorted(np.argsort(np.asarray(ranks, dtype=np.uint64), kind="stable")[:k].tolist())


def test_embeddings(
    name: str,
    reference: npt.NDArray[np.float32],
    current: npt.NDArray[np.float32],
    spec: DriftSpec,
    evidently_score: float | None,
) -> Tested:
    """The MMD permutation test of one pair of embedding samples."""
    result = mmd_test(reference, current, permutations=spec.permutations, seed=spec.seed)
    extra = {"classifier_auc": evidently_score} if evidently_score is not None else {}
    return Tested(
        name,
        Kind.EMBEDDING,
        result.p_value,
        result.mmd2,
        {"n": len(reference)},
        {"n": len(current), "bandwidth": result.bandwidth},
        extra,
    )
