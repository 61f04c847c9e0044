"""Do the canary alarms mean something? Power and false-alarm rate of the change detectors.

    nice -n 10 .venv/bin/python bench/model_change/run.py [--trials 200] [--quick]

1. Train (or load from ``.cache/``) a character-level GRU on the stdlib and its sibling.
2. Start ``server.py`` (OpenAI-compatible) on loopback and collect, through HTTP, a pool of
   completions per variant and canary prompt (25 prompts, chat completions with ``n``,
   ``logprobs`` and ``top_logprobs=5``).
3. For each budget (25 prompts x 2, 5, 10 samples, baseline of the same size) and trial, draw a
   disjoint baseline batch (unchanged model) and current batch (the variant) from the pools and
   run every detector; the null's current batch is a further disjoint draw of the unchanged
   model. Power (or false-alarm rate) at alpha = 0.05, with Clopper-Pearson 95 % intervals.
4. Print the table and write ``RESULTS.md`` next to this file.

Trials of different variants share the baseline batches (trial t uses baseline slot t), so
their estimates are correlated with each other but each is unbiased.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

import collect  # noqa: E402
import detectors  # noqa: E402
import model as lm  # noqa: E402

from monitors.canary.stats import CanarySample  # noqa: E402
from monitors.proportions import clopper_pearson  # noqa: E402

BUDGETS = (2, 5, 10)
SLOT = max(BUDGETS)
PROMPTS = 25
TEXT_DETECTORS = ("evidently",)

# Filled before the worker processes fork; read-only afterwards.
POOLS: dict[str, list[collect.Pool]] = {}


def batch(pools: list[collect.Pool], slot: int, size: int) -> list[CanarySample]:
    return [
        s
        for p, pool in enumerate(pools)
        for s in pool.samples(f"p{p:02d}", slot * SLOT, slot * SLOT + size)
    ]


def current(variant: str, t: int, budget: int, null_offset: int) -> list[CanarySample]:
    if variant == "null":
        return batch(POOLS["base"], null_offset + t, budget)
    return batch(POOLS[variant], t, budget)


def run_chunk(
    variant: str,
    budget: int,
    trials: range,
    names: tuple[str, ...],
    null_offset: int,
    n_trials: int,
) -> dict[str, int]:
    """Alarms per detector over ``trials`` of one variant at one budget.

    ``tollhouse-confirmed`` is the alarm as the product raises it: the check fires and a
    fresh batch (the next trial's current batch: disjoint from this trial's batches)
    fires too, against the same baseline.
    """
    alarms = dict.fromkeys(names, 0)
    for t in trials:
        base = batch(POOLS["base"], t, budget)
        cur = current(variant, t, budget, null_offset)
        for name in names:
            rng = np.random.default_rng([t, budget, sum(map(ord, variant)), sum(map(ord, name))])
            try:
                if name == detectors.CONFIRMED:
                    fresh = current(variant, (t + 1) % n_trials, budget, null_offset)
                    alarms[name] += detectors.tollhouse(base, cur, rng) and detectors.tollhouse(
                        base, fresh, rng
                    )
                    continue
                alarms[name] += detectors.DETECTORS[name](base, cur, rng)
            except ValueError as exc:  # e.g. an empty TF-IDF vocabulary in Evidently
                print(f"  {name} {variant} b{budget} t{t}: {exc} (counted as no alarm)")
    return alarms


def start_server(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, str(HERE / "server.py"), "--port", str(port)])
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"the model server on port {port} did not come up within 120 s")


def fmt(k: int, n: int) -> str:
    lo, hi = clopper_pearson(k, n)
    return f"{k / n:.2f} [{lo:.2f}, {hi:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description="canary change-detection benchmark")
    parser.add_argument("--trials", type=int, default=200, help="trials per changed variant")
    parser.add_argument("--null-trials", type=int, default=600)
    parser.add_argument("--evidently-trials", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="30 trials, 60 null: for iterating")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--workers", type=int, default=2, help="server and evaluation processes")
    parser.add_argument("--variants", default=",".join(lm.VARIANTS))
    args = parser.parse_args()
    if args.quick:
        args.trials, args.null_trials, args.evidently_trials = 30, 60, 30
    variants = [v for v in args.variants.split(",") if v]
    started = time.perf_counter()

    weights = lm.load_weights()
    held_out = lm.corpus_split()["held_out"]
    losses = {k: lm.held_out_loss(w, held_out) for k, w in weights.items()}
    print("held-out loss (nats/char):", {k: round(v, 4) for k, v in losses.items()})
    prompts = collect.canary_prompts(held_out, PROMPTS)

    t0 = time.perf_counter()
    ports = [args.port + i for i in range(args.workers)]
    servers = [start_server(port) for port in ports]
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        POOLS["base"] = asyncio.run(
            collect.collect(urls, "null", prompts, 2 * args.null_trials * SLOT, tag="base")
        )
        print(f"  pool base: {time.perf_counter() - t0:.0f}s", flush=True)
        for v in variants:
            if v != "null":
                POOLS[v] = asyncio.run(collect.collect(urls, v, prompts, args.trials * SLOT))
                print(f"  pool {v}: {time.perf_counter() - t0:.0f}s", flush=True)
    finally:
        for server in servers:
            server.terminate()
            server.wait()
    collect_s = time.perf_counter() - t0
    print(f"collected pools in {collect_s:.0f}s", flush=True)

    names = tuple(detectors.DETECTORS)
    jobs = []
    for v in variants:
        n_trials = args.null_trials if v == "null" else args.trials
        for b in BUDGETS:
            for name in names:
                count = min(n_trials, args.evidently_trials) if name in TEXT_DETECTORS else n_trials
                for lo in range(0, count, 50):
                    chunk = range(lo, min(lo + 50, count))
                    jobs.append((v, b, chunk, (name,), args.null_trials, n_trials))
    t1 = time.perf_counter()
    ctx = multiprocessing.get_context("fork")
    results: dict[tuple[str, int, str], list[int]] = {}
    with ProcessPoolExecutor(args.workers, mp_context=ctx) as pool:
        futures = [(job, pool.submit(run_chunk, *job)) for job in jobs]
        for i, (job, fut) in enumerate(futures):
            v, b, trials, (name,), _, _ = job
            entry = results.setdefault((v, b, name), [0, 0])
            entry[0] += fut.result()[name]
            entry[1] += len(trials)
            if i % 20 == 0:
                print(
                    f"  evaluated {i + 1}/{len(jobs)} chunks ({time.perf_counter() - t1:.0f}s)",
                    flush=True,
                )
    eval_s = time.perf_counter() - t1
    wall = time.perf_counter() - started
    write_results(args, variants, names, results, losses, prompts, collect_s, eval_s, wall)


def rate(results: dict[tuple[str, int, str], list[int]], v: str, b: int, name: str) -> float:
    k, n = results[(v, b, name)]
    return k / n


def targets(results: dict[tuple[str, int, str], list[int]], variants: list[str]) -> list[str]:
    """The benchmark's pass/fail lines, computed from the table.

    The targets are judged on the alarm Tollhouse raises, the confirmed one (a check and a
    fresh batch). The single check is the first half of that alarm; its lines follow for
    reference, without a verdict: it is an exact 5 % test, so its measured false-alarm rate
    sits on either side of 0.05 by chance.
    """
    lines = []
    for name, judged in ((detectors.CONFIRMED, True), ("tollhouse", False)):

        def verdict(ok: bool, judged: bool = judged) -> str:
            return ("met" if ok else "MISSED") if judged else "reference, not the alarm"

        if "null" in variants:
            for b in BUDGETS:
                k, n = results[("null", b, name)]
                hi = clopper_pearson(k, n)[1]
                ok = k / n <= 0.05 and hi <= 0.08
                lines.append(
                    f"false alarms, {name} 25x{b}: {k}/{n} = {k / n:.3f}, CP upper "
                    f"{hi:.3f} (target <= 0.05, upper <= 0.08): {verdict(ok)}"
                )
        for v in ("temp-1.5", "mix-50"):
            if v in variants:
                r = rate(results, v, 10, name)
                lines.append(
                    f"power, {name}, {v} at 25x10: {r:.2f} (target >= 0.9): {verdict(r >= 0.9)}"
                )
        for v in ("temp-1.2", "mix-25", "int8"):
            if v in variants:
                for b in BUDGETS:
                    t, m = rate(results, v, b, name), rate(results, v, b, "mmd-hamming")
                    lines.append(
                        f"{v} 25x{b}: {name} {t:.2f} vs mmd-hamming {m:.2f}: {verdict(t > m)}"
                    )
    return lines


def write_results(
    args: argparse.Namespace,
    variants: list[str],
    names: tuple[str, ...],
    results: dict[tuple[str, int, str], list[int]],
    losses: dict[str, float],
    prompts: list[str],
    collect_s: float,
    eval_s: float,
    wall: float,
) -> None:
    header = ["variant", "trials"] + [f"{n} 25x{b}" for n in names for b in BUDGETS]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for v in variants:
        trials = results[(v, BUDGETS[0], names[0])][1]
        cells = [f"{v}: {lm.VARIANTS[v].description}", str(trials)]
        for n in names:
            for b in BUDGETS:
                k, total = results[(v, b, n)]
                cells.append(fmt(k, total) + ("" if total == trials else f" (n={total})"))
        rows.append("| " + " | ".join(cells) + " |")
    table = "\n".join(rows)
    print(table)
    null_cells = [
        f"{n} 25x{b}: {fmt(*results[('null', b, n)])}"
        for n in names
        for b in BUDGETS
        if "null" in variants
    ]
    cmd = "nice -n 10 .venv/bin/python bench/model_change/run.py" + (
        " --quick"
        if args.quick
        else (
            f" --trials {args.trials} --null-trials {args.null_trials}"
            f" --evidently-trials {args.evidently_trials}"
        )
    )
    text = RESULTS_TEMPLATE.format(
        table=table,
        null="\n".join(f"- {c}" for c in null_cells),
        cmd=cmd,
        machine=f"{platform.machine()}, {os.cpu_count()} CPU cores shared with other jobs, "
        f"{args.workers} worker processes, torch/BLAS 1 thread each, Python "
        f"{platform.python_version()}",
        wall=f"{wall / 60:.1f} min (pool collection {collect_s / 60:.1f} min, "
        f"evaluation {eval_s / 60:.1f} min; model training cached)",
        losses=", ".join(f"{k} {v:.3f}" for k, v in losses.items()),
        trials=args.trials,
        null_trials=args.null_trials,
        ev=args.evidently_trials,
        prompt=prompts[0].replace("\n", "\\n"),
    )
    text += "\n## Targets\n\n" + "\n".join(f"- {line}" for line in targets(results, variants))
    (HERE / "RESULTS.md").write_text(text + NOTES, encoding="utf-8")
    print(f"wrote {HERE / 'RESULTS.md'}; wall time {wall / 60:.1f} min")


RESULTS_TEMPLATE = """# Canary change detection: power and false alarms

Power (share of trials with an alarm at alpha = 0.05) per variant, detector and budget
(25 prompts x N samples in each of the baseline and current batch). The `null` row is the
false-alarm rate. Cells are `rate [Clopper-Pearson 95 % interval]`, with `(n=...)` where the
cell ran on fewer trials than its row. {trials} trials per changed variant, {null_trials} for
the null; Evidently on the first {ev} trials of each row (it is the slowest detector).

{table}

False-alarm rates with 95 % intervals:

{null}

Reproduce: `{cmd}`

Machine: {machine}. Wall time: {wall}.

Held-out loss (nats/char) of the weight sets: {losses}.
First canary prompt: `{prompt}`
"""

NOTES = """

## What is being compared

- **tollhouse**: `monitors.canary.stats.change_test` with the logprobs the server returns. Six
  statistics on the same 1000 prompt-stratified permutations: MMD-Hamming, character-frequency
  distance, response length, mean logprob of the sampled tokens, first-token top-5 logprob
  vectors (mean gap) and their spread around the prompt's pooled median; combined by the minimum
  p-value, itself ranked within the permutation distribution, so the level is exact.
- **tollhouse-confirmed**: the alarm as Tollhouse raises it (`monitors/canary/job.py`): the
  check above fires, and a fresh batch (the next trial's current batch, disjoint from this
  trial's) against the same baseline fires too. It costs a second batch only when the first
  fires. Its false alarms are not alpha squared: both tests share the baseline batch, and an
  unusual baseline makes both more likely to fire.
- **tollhouse-text**: the same call on the texts only (an upstream that returns no logprobs):
  the first three statistics.
- **mmd-hamming**: the reference method (Gao et al., ICLR 2025), 1000 permutations.
- **length-ks**: Kolmogorov-Smirnov on response lengths, pooled over prompts.
- **evidently**: evidently 0.7 `ValueDrift` on the text column (a TF-IDF + SGD domain classifier
  whose ROC AUC is compared with the 95th percentile of random classifiers; runs offline). Its
  fixed-seed percentile is memoised (same number, computed once per label vector) for speed.

## How to read it (honestly)

- The server runs on CPU and is deterministic: the first-token logprobs of a prompt are the same
  on every request of the same weights, so *any* weight change (int8, 2 % noise, one fine-tuning
  step, a share of requests from the sibling) moves them and `first_token` fires with the
  smallest p-value the permutations allow. On GPUs, batch-dependent kernels make these logprobs
  jitter between requests; the test stays valid when that jitter is alike in both batches, but a
  baseline taken under different serving conditions (hardware, batch sizes, a new engine
  version) can differ for reasons the provider would not call a model change. Expect
  `first_token` alarms then, and re-take the baseline after a known infrastructure change.
- Temperature and top-p do not move the raw logprobs of a given token; they show through the
  mean logprob of the *sampled* tokens (more improbable tokens at a higher temperature, fewer
  with top-p), which is why temperature 1.1 and top-p 0.9 are caught at 25x5 and above.
- Substitution is routed per choice (each sampled completion, and each one-token probe, goes to
  the sibling with the stated probability). With 2 samples a prompt a single odd sample looks
  the same on either side of the split, so the spread statistic pools the evidence "the odd ones
  are all in the current batch" over prompts.
- Without logprobs the detector falls back to text statistics; on this character model they
  beat MMD-Hamming on temperature changes but, like every text-only detector here, do not see the
  weight changes whose effect on sampled text is tiny (held-out losses above differ by < 0.5 %).
- MMD-Hamming compares characters position by position; completions of a code line by a
  character model vary a lot from the first characters on, so the kernel sees mostly noise.
- Trials of different variants share baseline batches (trial t uses baseline slot t): the rows
  are correlated with each other, each is unbiased. All batches within a trial are disjoint.
- The false-alarm target. Every permutation test here has level 50/1001 = 0.04995 by
  construction (the combined p-value is ranked within the same permutations), so the null row
  estimates a rate whose true value is at most 0.05, and with 600 trials its point estimate
  lands above 0.05 about half of the time (binomial SD 0.009). That is why the single check's
  lines carry no verdict: the alarm is the confirmed detector, and the targets are judged on it.
"""

if __name__ == "__main__":
    main()
