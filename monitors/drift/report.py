"""Evidently 0.7 as the drift engine for column signals, and the HTML report.

For each numeric column Evidently computes ``ValueDrift(method="ks")`` (the p-value) and
``ValueDrift(method="wasserstein")`` (the Wasserstein distance over the reference's
standard deviation: the effect size); for the finish-reason mix ``method="chisquare"``
and ``method="jensenshannon"``. The same snapshot renders the HTML report.

Embeddings get a separate report (`embeddings_drift`): Evidently's ``EmbeddingsDrift``
(its default method, a classifier's ROC AUC telling the windows apart) on the sampled
vectors. That score is shown, not decided on: Evidently returns no p-value for it, so
the decision is `monitors.drift.statistics.mmd_test`.

Evidently 0.7.23 warns at import (it touches ``numpy.core``; its UI layer calls
litestar's deprecated DI helpers). Those two warnings, and only those, are silenced
around the import; the suite runs with warnings as errors and they are not ours to fix.
Numeric floating-point warnings inside a run (a category new in the current window makes
the chi-square expectation 0, hence p = 0, which is the right answer) are silenced by
``np.errstate`` for the run only.
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message=r"numpy\.core is deprecated", category=DeprecationWarning
    )
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"litestar(\.|$)")
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift, ValueDrift

NUMERIC_METHODS = ("ks", "wasserstein")
CATEGORICAL_METHODS = ("chisquare", "jensenshannon")


@dataclass(frozen=True, slots=True)
class ColumnScores:
    """Evidently's value per (column, method), and the report (when asked for)."""

    values: Mapping[tuple[str, str], float]
    pages: list[tuple[str, str]]  # (title, standalone HTML) when rendered


def _run(report: Report, current: Dataset, reference: Dataset) -> Any:
    with np.errstate(divide="ignore", invalid="ignore"):
        return report.run(current, reference)


def _values(snapshot: Any) -> dict[tuple[str, str], float]:
    values: dict[tuple[str, str], float] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        column = config.get("column") or config.get("embeddings_name")
        values[(str(column), str(config.get("method")))] = float(metric["value"])
    return values


def column_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    render: bool,
) -> ColumnScores:
    """Evidently's drift scores for ``numeric`` and ``categorical`` columns (NaN rows of a
    column are left out of that column's test)."""
    if not numeric and not categorical:
        return ColumnScores({}, [])
    columns = [*numeric, *categorical]
    definition = DataDefinition(
        numerical_columns=list(numeric), categorical_columns=list(categorical)
    )
    metrics: list[Any] = [
        ValueDrift(column=column, method=method) for column in numeric for method in NUMERIC_METHODS
    ] + [
        ValueDrift(column=column, method=method)
        for column in categorical
        for method in CATEGORICAL_METHODS
    ]
    snapshot = _run(
        Report(metrics),
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    pages = [("Column drift", snapshot.get_html_str(as_iframe=False))] if render else []
    return ColumnScores(_values(snapshot), pages)


def embeddings_drift(
    reference: Mapping[str, npt.NDArray[np.float32]],
    current: Mapping[str, npt.NDArray[np.float32]],
    *,
    render: bool,
) -> ColumnScores:
    """Evidently's EmbeddingsDrift score per named set of vectors (keyed ``(name,
    "evidently")``). Sets of different sizes get one report each."""
    values: dict[tuple[str, str], float] = {}
    pages: list[tuple[str, str]] = []
    for name in reference:
        ref, cur = reference[name], current[name]
        columns = [f"{name}_{i}" for i in range(ref.shape[1])]
        definition = DataDefinition(numerical_columns=columns, embeddings={name: columns})
        snapshot = _run(
            Report([EmbeddingsDrift(embeddings_name=name)]),
            Dataset.from_pandas(pd.DataFrame(cur, columns=columns), data_definition=definition),
            Dataset.from_pandas(pd.DataFrame(ref, columns=columns), data_definition=definition),
        )
        for metric in snapshot.dict()["metrics"]:
            values[(name, "evidently")] = float(metric["value"])
        if render:
            pages.append((f"Embeddings: {name}", snapshot.get_html_str(as_iframe=False)))
    return ColumnScores(values, pages)


def combine(pages: Sequence[tuple[str, str]]) -> str:
    """One HTML page holding several Evidently reports, each in its own frame (their
    scripts use fixed element ids, so they cannot share a document)."""
    if len(pages) == 1:
        return pages[0][1]
    frames = "\n".join(
        f"<h2>{html.escape(title)}</h2>\n"
        f'<iframe style="width:100%;height:900px;border:0" srcdoc="{html.escape(body)}">'
        "</iframe>"
        for title, body in pages
    )
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8"><title>Tollhouse drift report'
        f"</title></head><body>\n{frames}\n</body></html>\n"
    )
