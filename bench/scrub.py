"""How long the log scrubber takes per line, for clean and for dirty log lines.

The scrubber runs on every log line the proxy writes, so a clean line (the common case)
must cost well under 20 µs. Each round times ``--iterations`` calls per line; the median
over ``--rounds`` rounds is printed per line, then the median over the clean and over the
dirty lines.

    .venv/bin/python bench/scrub.py [--rounds 7] [--iterations 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time

from governance.observability.scrub import Scrubber

CLEAN = (
    '127.0.0.1:53422 - "POST /v1/chat/completions HTTP/1.1" 200',
    "request req_0123abcd0123abcd0123abcd0123abcd model=gpt-4o-mini upstream=openai "
    "status=200 prompt_tokens=412 completion_tokens=87 latency=1234.5 ms",
    "policy decision allow for principal app-checkout (rule default-allow) in 0.42 ms; "
    "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
    "2026-11-21T10:00:00.123Z audit record 123e4567-e89b-12d3-a456-426614174000 appended "
    "to chain shared at height 18234 (sha256 9f86d081884c7d65)",
    "upstream meta-llama/Llama-3.1-8B-Instruct at http://10.0.0.12:8000/v1 answered in "
    "812.7 ms with 3 choices, max_tokens=512, temperature=0.2",
    "drift window 2026-11-14..2026-11-21 closed: 48213 requests, p95 latency 2.31 s, "
    "error rate 0.4%, spend 123.456 USD",
)

_KEY = "th-1a2b3c4d-Zx8_QkAbCdEfGhIjKlMnOpQrStUv"
DIRTY = (
    f'127.0.0.1:53422 - "POST /v1/chat/completions?api_key={_KEY} HTTP/1.1" 401',
    f"rejected key {_KEY} for principal app-checkout: expired 2026-11-20T00:00:00Z",
    "upstream error from https://api.example.com/v1 with Authorization: Bearer "
    "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789 (status 401)",
    "PII leak check: contact jane.doe@example.com or +44 20 7946 0958, card "
    "4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32",
    "connecting to postgresql://tollhouse:hunter2hunter2@db.example.com:5432/tollhouse "
    "with pool_size=10",
    'config {"password": "correct horse battery staple", "ssn": "123-45-6789", '
    '"phone": "(202) 555-0143"}',
)


def time_line(scrubber: Scrubber, line: str, rounds: int, iterations: int) -> float:
    """Median µs per ``scrub`` call on one line."""
    per_call = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(iterations):
            scrubber.scrub(line)
        per_call.append((time.perf_counter() - start) / iterations * 1e6)
    return statistics.median(per_call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    scrubber = Scrubber(secrets=["upstream-secret-0123456789", "another-configured-key"])
    for label, lines in (("clean", CLEAN), ("dirty", DIRTY)):
        figures = []
        for line in lines:
            scrubber.scrub(line)  # warm-up
            figure = time_line(scrubber, line, args.rounds, args.iterations)
            figures.append(figure)
            print(f"{label}  {len(line):4d} chars  {figure:7.2f} µs  {line[:60]!r}")
        print(f"{label}  median {statistics.median(figures):.2f} µs per line\n")


if __name__ == "__main__":
    main()
