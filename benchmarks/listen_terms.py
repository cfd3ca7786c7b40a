"""Cost per post of the listening matcher with 10, 100 and 1,000 terms, measured in one run.

    .venv/bin/python benchmarks/listen_terms.py [--posts N]

The posts are the real airline tweets when ../shared/data is present (else generated sentences);
the terms are random words and two-word phrases plus a few that do occur. The one-pass matcher
(`Listener.match_text`) is compared with the naive way, one compiled pattern per term looped over
each post, at the same term counts. Figures are ratios to the 10-term run of the same method.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import string
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.listen import ListenSettings  # noqa: E402
from operators.brands import BrandAccounts  # noqa: E402
from operators.listen import Listener, fold  # noqa: E402

AIRLINE = ROOT.parent / "shared" / "data" / "airline_sentiment" / "Tweets.csv"
REAL_TERMS = ["united", "jetblue", "lost my bag", "#fail", "customer service", "southwestair"]


def posts(n: int) -> list[str]:
    if AIRLINE.exists():
        rows = list(csv.DictReader(AIRLINE.open(encoding="utf-8")))
        return [rows[i % len(rows)]["text"] for i in range(n)]
    rng = random.Random(1)
    vocab = ["flight", "delayed", "bag", "love", "the", "crew", "@united", "#fail", "again"]
    return [" ".join(rng.choices(vocab, k=18)) for _ in range(n)]


def terms(count: int, rng: random.Random) -> list[str]:
    out = list(REAL_TERMS)
    while len(out) < count:
        word = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 10)))
        out.append(word if rng.random() < 0.7 else f"{word} {rng.choice(['air', 'care', 'co'])}")
    return out[:count]


def one_pass(texts: list[str], listener: Listener) -> float:
    match = listener.match_text
    start = time.perf_counter()
    for text in texts:
        match(text)
    return time.perf_counter() - start


def per_term_loop(texts: list[str], keywords: list[str]) -> float:
    patterns = [re.compile(r"(?<!\w)" + re.escape(k) + r"(?!\w)") for k in keywords]
    start = time.perf_counter()
    for text in texts:
        folded = fold(text)
        [p.pattern for p in patterns if p.search(folded)]
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posts", type=int, default=20_000)
    args = ap.parse_args()
    texts = posts(args.posts)
    rng = random.Random(7)
    rows = []
    base_one = base_loop = None
    for count in (10, 100, 1000):
        keywords = terms(count, rng)
        listener = Listener(ListenSettings(keywords=keywords), BrandAccounts.parse(["united"]))
        listener.match_text(texts[0])
        best_one = min(one_pass(texts, listener) for _ in range(3))
        best_loop = min(per_term_loop(texts, keywords) for _ in range(1 if count == 1000 else 3))
        base_one = base_one or best_one
        base_loop = base_loop or best_loop
        rows.append((count, best_one, best_one / base_one, best_loop, best_loop / base_loop))
    print(f"posts: {len(texts):,} ({'airline tweets' if AIRLINE.exists() else 'generated'})")
    head = ("terms", "one pass µs/post", "ratio", "per-term loop µs/post", "ratio")
    print(f"{head[0]:>6}  {head[1]:>17} {head[2]:>6}   {head[3]:>22} {head[4]:>6}")
    for count, one, r1, loop, r2 in rows:
        print(
            f"{count:>6}  {one / len(texts) * 1e6:>17.1f} {r1:>5.2f}x"
            f"   {loop / len(texts) * 1e6:>22.1f} {r2:>5.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
