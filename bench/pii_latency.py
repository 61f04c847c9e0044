"""How long one PII analysis takes, on one CPU core, for short and long prompts.

Prompts of ~60 and ~600 words are assembled from the synthetic records of the PII data
set (fake identities only; see ../shared/data/pii/README.md): records are drawn with a
fixed seed and joined until the word count is reached, so every prompt carries the mix
of names, addresses and numbers the analyzer has to look at. The process is pinned to
one core with BLAS threads at 1; each round times every prompt once (after a warm-up),
and the medians over rounds of the per-round p50 and p90 are printed: wall-clock time,
and the thread's CPU time. Alongside, the spaCy pipeline alone on the same prompts
("model p50"): on a shared or throttled machine every figure moves together, and the
difference between the two is what Tollhouse adds to the model.

    .venv/bin/python bench/pii_latency.py [--rounds 5] [--prompts 40] [--cpu 0]
"""

from __future__ import annotations

import os

# Before numpy/thinc are imported: no BLAS thread pools on our single core.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterable  # noqa: E402
from pathlib import Path  # noqa: E402

from governance.config.schema import PiiConfig  # noqa: E402
from governance.pii.analyzer import build_analyzer  # noqa: E402
from governance.pii.nlp import load_pipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "pii"
SIZES = (60, 600)


def make_prompts(texts: list[str], words: int, count: int, seed: int) -> list[str]:
    """``count`` prompts of about ``words`` words, each joining random records."""
    rng = random.Random(seed)
    prompts = []
    for _ in range(count):
        parts: list[str] = []
        total = 0
        while total < words:
            text = rng.choice(texts)
            parts.append(text)
            total += len(text.split())
        prompts.append("\n\n".join(parts))
    return prompts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--dataset", default="synth_dataset_v2.json")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--prompts", type=int, default=40, help="distinct prompts per size")
    parser.add_argument("--cpu", type=int, default=0, help="the core to pin to")
    parser.add_argument("--model", default=PiiConfig().model)
    parser.add_argument("--patterns-only", action="store_true")
    args = parser.parse_args(list(argv) if argv is not None else None)

    os.sched_setaffinity(0, {args.cpu})
    records = json.loads((args.data / args.dataset).read_text(encoding="utf-8"))
    texts = [str(r["full_text"]) for r in records]
    config = PiiConfig(model=args.model, patterns_only=args.patterns_only, threads=1)
    started = time.perf_counter()
    analyzer = build_analyzer(config)
    print(
        f"model: {'none (patterns only)' if args.patterns_only else args.model}; "
        f"built in {time.perf_counter() - started:.1f}s; pinned to cpu {args.cpu}; "
        f"{args.rounds} rounds x {args.prompts} prompts per size"
    )
    nlp = load_pipeline(config)
    print(
        f"{'size':>10} {'words':>6} {'p50 ms':>8} {'p90 ms':>8} {'cpu p50':>8} {'cpu p90':>8} "
        f"{'model p50':>10} {'findings':>9}"
    )
    for size in SIZES:
        prompts = make_prompts(texts, size, args.prompts, seed=size)
        for prompt in prompts[:5]:
            analyzer.analyze(prompt)
        stats: dict[str, list[float]] = {"p50": [], "p90": [], "cpu50": [], "cpu90": [], "nlp": []}
        findings = 0
        for _ in range(args.rounds):
            wall, cpu, model = [], [], []
            for prompt in prompts:
                w0, c0 = time.perf_counter(), time.thread_time()
                findings += len(analyzer.analyze(prompt))
                cpu.append(1000 * (time.thread_time() - c0))
                wall.append(1000 * (time.perf_counter() - w0))
                with nlp.memory_zone():  # as the analyzer runs it
                    m0 = time.perf_counter()
                    nlp(prompt)
                    model.append(1000 * (time.perf_counter() - m0))
            stats["p50"].append(percentile(wall, 0.5))
            stats["p90"].append(percentile(wall, 0.9))
            stats["cpu50"].append(percentile(cpu, 0.5))
            stats["cpu90"].append(percentile(cpu, 0.9))
            stats["nlp"].append(percentile(model, 0.5))
        words = statistics.median(len(p.split()) for p in prompts)
        medians = " ".join(f"{statistics.median(v):>8.1f}" for v in stats.values())
        per_prompt = findings / (args.rounds * len(prompts))
        print(f"{f'~{size} words':>10} {words:>6.0f} {medians}   {per_prompt:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
