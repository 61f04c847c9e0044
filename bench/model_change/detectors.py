"""The detectors compared by the benchmark; each answers "alarm or not" at level ALPHA.

Evidently's text drift (``ValueDrift`` on a text column, evidently 0.7) is a domain classifier:
TF-IDF words + SGD classifier trained on half of the pooled rows, with its ROC AUC on the other
half compared with the 95th percentile of the AUC of 1000 random classifiers. That percentile
depends only on the test labels and a fixed seed (42); we memoise it (the identical number)
because recomputing it takes ~5 s per call. It runs offline (sklearn's built-in English stop
words); no NLTK descriptor is used.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from monitors.canary.stats import (
    CanarySample,
    change_test,
    length_ks_test,
    mmd_hamming_test,
)

ALPHA = 0.05
PERMUTATIONS = 1000

Detector = Callable[[Sequence[CanarySample], Sequence[CanarySample], np.random.Generator], bool]


def _text_only(samples: Sequence[CanarySample]) -> list[CanarySample]:
    return [CanarySample(s.prompt_id, s.text) for s in samples]


def tollhouse(
    base: Sequence[CanarySample], cur: Sequence[CanarySample], rng: np.random.Generator
) -> bool:
    return change_test(base, cur, permutations=PERMUTATIONS, rng=rng).p_value <= ALPHA


def tollhouse_text(
    base: Sequence[CanarySample], cur: Sequence[CanarySample], rng: np.random.Generator
) -> bool:
    test = change_test(_text_only(base), _text_only(cur), permutations=PERMUTATIONS, rng=rng)
    return test.p_value <= ALPHA


def mmd(
    base: Sequence[CanarySample], cur: Sequence[CanarySample], rng: np.random.Generator
) -> bool:
    return mmd_hamming_test(base, cur, permutations=PERMUTATIONS, rng=rng).p_value <= ALPHA


def length_ks(
    base: Sequence[CanarySample], cur: Sequence[CanarySample], rng: np.random.Generator
) -> bool:
    return length_ks_test(base, cur).p_value <= ALPHA


@functools.cache
def _evidently() -> Callable[[list[str], list[str]], bool]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import DataDefinition, Dataset, Report
        from evidently.legacy.utils import data_drift_utils
        from evidently.metrics import ValueDrift

    original = data_drift_utils.roc_auc_random_classifier_percentile

    @functools.cache
    def percentile(labels: bytes, p_value: float) -> float:
        return float(original(np.frombuffer(labels, dtype=np.int64), p_value=p_value))

    def memoised(y_test: object, p_value: float = 0.05, **_: object) -> float:
        return percentile(np.asarray(y_test, dtype=np.int64).tobytes(), p_value)

    data_drift_utils.roc_auc_random_classifier_percentile = memoised
    definition = DataDefinition(text_columns=["text"])

    def drifted(reference: list[str], current: list[str]) -> bool:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = Dataset.from_pandas(pd.DataFrame({"text": reference}), data_definition=definition)
            cur = Dataset.from_pandas(pd.DataFrame({"text": current}), data_definition=definition)
            snapshot = Report([ValueDrift(column="text")], include_tests=True).run(cur, ref)
            tests = snapshot.dict()["tests"]
        return any(str(t["status"]).endswith("FAIL") for t in tests)

    return drifted


def evidently(
    base: Sequence[CanarySample], cur: Sequence[CanarySample], rng: np.random.Generator
) -> bool:
    # An empty completion is an empty document for TF-IDF; a placeholder keeps the row.
    return _evidently()([s.text or "<empty>" for s in base], [s.text or "<empty>" for s in cur])


# The alarm as the product raises it: `tollhouse` fires on the check and again on a fresh
# batch against the same baseline (run.py supplies the fresh batch).
CONFIRMED = "tollhouse-confirmed"

DETECTORS: dict[str, Detector] = {
    "tollhouse": tollhouse,
    CONFIRMED: tollhouse,  # placeholder: run.py evaluates it with two batches
    "tollhouse-text": tollhouse_text,
    "mmd-hamming": mmd,
    "length-ks": length_ks,
    "evidently": evidently,
}
