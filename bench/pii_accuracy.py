"""How much personal data the PII analyzer catches, on labelled synthetic data.

Scores `governance.pii.analyzer` on the Presidio-research sets in ``--data`` (see the
README.md there). Records are split into a tune and a held-out half by a fixed hash of
their template id; recognizers are tuned by looking at the tune half only, and the
figures we publish are the held-out half's (docs/pii-accuracy.md).

    .venv/bin/python bench/pii_accuracy.py [--split held-out|tune|all] [--threshold 0.5]
    .venv/bin/python bench/pii_accuracy.py --split tune --show-misses PERSON

Definitions are printed with the table. Whitespace never counts as a covered or an
uncovered character (an address split over lines is covered when its words are).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from governance.config.schema import PiiConfig
from governance.pii.analyzer import build_analyzer, prepare_environment, to_findings
from governance.pii.findings import Finding, TextAnalyzer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "pii"
PRIMARY = "synth_dataset_v2.json"
# Chosen by label counts alone, before any scoring: the first salt for which every gold
# type has templates in the held-out half and every type with two or more templates also
# has some in the tune half (US_DRIVER_LICENSE has a single template: it is held out).
SPLIT_SALT = "tollhouse-pii-split-3"
# Which finding types count as the right type for a gold type ("typed" figures).
# Street addresses contain cities and postcodes, so those types are right for them too.
ACCEPTED_TYPES: dict[str, frozenset[str]] = {
    "STREET_ADDRESS": frozenset({"STREET_ADDRESS", "LOCATION", "ZIP_CODE"}),
    "ADDRESS": frozenset({"STREET_ADDRESS", "LOCATION", "ZIP_CODE"}),
    "GPE": frozenset({"LOCATION"}),
    "DOMAIN_NAME": frozenset({"DOMAIN_NAME", "URL"}),
    "PREFIX": frozenset({"TITLE"}),
}
DEFINITIONS = """\
masked recall   gold spans whose non-space characters are at least half covered by the union
                of all findings (any type) scoring >= threshold / all gold spans
typed recall    same, counting only findings of an accepted type for the gold type
precision       findings (>= threshold) that share at least one character with a gold span
                of any type / all findings
typed precision findings sharing a character with a gold span they are an accepted type for
char precision  masked non-space characters inside some gold span / all masked non-space
                characters (over-masking: 1.0 means nothing outside the gold was masked)
overall         micro-average over every gold span of every type in the data set"""


def split_of(template_id: object) -> str:
    """``tune`` or ``held-out``, fixed by a hash of the template id."""
    digest = hashlib.sha256(f"{SPLIT_SALT}:{template_id}".encode()).digest()
    return "tune" if digest[0] % 2 == 0 else "held-out"


def accepted(gold_type: str) -> frozenset[str]:
    return ACCEPTED_TYPES.get(gold_type, frozenset({gold_type}))


@dataclass
class Tally:
    """Counts accumulated over records; ratios are computed at the end."""

    gold: Counter[str] = field(default_factory=Counter)
    masked: Counter[str] = field(default_factory=Counter)
    typed: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)
    found_ok: Counter[str] = field(default_factory=Counter)
    found_typed_ok: Counter[str] = field(default_factory=Counter)
    masked_chars: int = 0
    masked_gold_chars: int = 0
    misses: list[tuple[str, str, str, list[tuple[str, str]]]] = field(default_factory=list)
    false_positives: list[tuple[str, str, str]] = field(default_factory=list)


def _solid(text: str, start: int, end: int) -> set[int]:
    return {i for i in range(start, end) if not text[i].isspace()}


def score_record(record: dict[str, object], findings: Sequence[Finding], tally: Tally) -> None:
    """Add one record's gold spans and findings to ``tally``."""
    text = str(record["full_text"])
    spans = list(record["spans"])  # type: ignore[call-overload]
    covered: set[int] = set()
    covered_by: dict[str, set[int]] = {}
    for f in findings:
        chars = _solid(text, f.start, f.end)
        covered |= chars
        covered_by.setdefault(f.entity_type, set()).update(chars)
    gold_chars: set[int] = set()
    for span in spans:
        gtype, start, end = span["entity_type"], span["start_position"], span["end_position"]
        chars = _solid(text, start, end)
        gold_chars |= chars
        tally.gold[gtype] += 1
        if not chars:
            continue
        if 2 * len(chars & covered) >= len(chars):
            tally.masked[gtype] += 1
        else:
            seen = [(f.entity_type, text[f.start : f.end]) for f in findings]
            tally.misses.append((gtype, text[start:end], text, seen))
        typed_cover: set[int] = set()
        for etype in accepted(gtype):
            typed_cover |= covered_by.get(etype, set())
        if 2 * len(chars & typed_cover) >= len(chars):
            tally.typed[gtype] += 1
    for f in findings:
        tally.found[f.entity_type] += 1
        hits = [s for s in spans if f.start < s["end_position"] and s["start_position"] < f.end]
        if hits:
            tally.found_ok[f.entity_type] += 1
        else:
            tally.false_positives.append((f.entity_type, text[f.start : f.end], text))
        if any(f.entity_type in accepted(s["entity_type"]) for s in hits):
            tally.found_typed_ok[f.entity_type] += 1
    tally.masked_chars += len(covered)
    tally.masked_gold_chars += len(covered & gold_chars)


def _ratio(num: int, den: int) -> str:
    return f"{num / den:6.3f}" if den else "    - "


def report(name: str, tally: Tally, out: list[str]) -> None:
    """Append the tables of one split to ``out``."""
    out.append(f"\n== {name} ==")
    out.append(f"{'gold type':<18}{'spans':>6} {'masked recall':>14} {'typed recall':>13}")
    for gtype, n in tally.gold.most_common():
        masked = f"{_ratio(tally.masked[gtype], n)} ({tally.masked[gtype]:>3})"
        out.append(f"{gtype:<18}{n:>6} {masked:>14} {_ratio(tally.typed[gtype], n):>13}")
    total, total_masked = sum(tally.gold.values()), sum(tally.masked.values())
    out.append(
        f"{'OVERALL':<18}{total:>6} {_ratio(total_masked, total):>14} "
        f"{_ratio(sum(tally.typed.values()), total):>13}"
    )
    out.append(f"\n{'finding type':<18}{'found':>6} {'precision':>10} {'typed prec.':>12}")
    for ftype, n in tally.found.most_common():
        out.append(
            f"{ftype:<18}{n:>6} {_ratio(tally.found_ok[ftype], n):>10} "
            f"{_ratio(tally.found_typed_ok[ftype], n):>12}"
        )
    found = sum(tally.found.values())
    out.append(
        f"{'OVERALL':<18}{found:>6} {_ratio(sum(tally.found_ok.values()), found):>10} "
        f"{_ratio(sum(tally.found_typed_ok.values()), found):>12}"
    )
    out.append(f"char precision {_ratio(tally.masked_gold_chars, tally.masked_chars)}")


def load(path: Path) -> list[dict[str, object]]:
    records: list[dict[str, object]] = json.loads(path.read_text(encoding="utf-8"))
    return records


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="data directory")
    parser.add_argument("--dataset", default=PRIMARY, help="file in --data to score")
    parser.add_argument(
        "--split",
        choices=["held-out", "tune", "all"],
        default="held-out",
        help="all: the tune half, the held-out half, then every record together",
    )
    parser.add_argument("--threshold", type=float, default=0.5, help="min score to mask")
    parser.add_argument("--model", default=PiiConfig().model, help="spaCy model package")
    parser.add_argument("--patterns-only", action="store_true", help="no NER model")
    parser.add_argument(
        "--presidio-defaults",
        action="store_true",
        help="for comparison: Presidio's default engine and recognizers on the same model",
    )
    parser.add_argument("--show-misses", metavar="TYPE", help="tune split only: list misses")
    parser.add_argument("--show-fp", metavar="TYPE", help="tune split only: list false hits")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if (args.show_misses or args.show_fp) and args.split != "tune":
        parser.error("--show-misses/--show-fp only look at the tune split (use --split tune)")

    records = load(args.data / args.dataset)
    config = PiiConfig(model=args.model, patterns_only=args.patterns_only, threads=1)
    started = time.perf_counter()
    analyzer = presidio_defaults(args.model) if args.presidio_defaults else build_analyzer(config)
    built = time.perf_counter() - started
    splits = ["tune", "held-out", "all"] if args.split == "all" else [args.split]
    out = [
        f"data: {args.data / args.dataset} ({len(records)} records); model: "
        f"{'none (patterns only)' if args.patterns_only else args.model}"
        f"{' with PRESIDIO DEFAULTS' if args.presidio_defaults else ''}; "
        f"threshold {args.threshold}; built in {built:.1f}s",
        f"split: sha256('{SPLIT_SALT}:<template_id>')[0] even = tune, odd = held-out",
        DEFINITIONS,
    ]
    for name in splits:
        tally = Tally()
        chosen = [r for r in records if name in ("all", split_of(r["template_id"]))]
        started = time.perf_counter()
        for record in chosen:
            findings = analyzer.analyze(str(record["full_text"]))
            score_record(record, [f for f in findings if f.score >= args.threshold], tally)
        elapsed = time.perf_counter() - started
        templates = len({r["template_id"] for r in chosen})
        report(f"{name}: {len(chosen)} records, {templates} templates", tally, out)
        out.append(f"analysis: {1000 * elapsed / max(len(chosen), 1):.1f} ms/record (mean)")
        if name == "tune":
            _show(args.show_misses, args.show_fp, tally, out)
    print("\n".join(out))
    return 0


class _PresidioDefaults:
    """Presidio's `AnalyzerEngine` as it comes (full spaCy pipeline, default recognizers)."""

    def __init__(self, model: str) -> None:
        prepare_environment()  # its e-mail recognizer's tldextract must not go online
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import SpacyNlpEngine

        # An installed package name: Presidio loads it without downloading anything.
        nlp_engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model}])
        self.engine = AnalyzerEngine(nlp_engine=nlp_engine)

    def analyze(self, text: str, custom: object = None) -> list[Finding]:
        return to_findings(self.engine.analyze(text=text, language="en"))


def presidio_defaults(model: str) -> TextAnalyzer:
    return _PresidioDefaults(model)


def _show(misses: str | None, fps: str | None, tally: Tally, out: list[str]) -> None:
    for gtype, value, text, seen in tally.misses:
        if misses in (gtype, "ALL"):
            out.append(f"MISS {gtype} {value!r} in {text!r}\n     found {seen}")
    for ftype, value, text in tally.false_positives:
        if fps in (ftype, "ALL"):
            out.append(f"FP {ftype} {value!r} in {text!r}")


if __name__ == "__main__":
    sys.exit(main())
