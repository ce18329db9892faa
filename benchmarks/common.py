"""Helpers shared by the benchmarks: a synthetic news corpus and timing summaries."""

from __future__ import annotations

import json
import random
import resource
import statistics
from pathlib import Path
from typing import Callable

SUBJECTS = ["The ministry", "Officials", "The central bank", "Analysts", "The coalition", "Regional authorities",
            "The company", "Negotiators", "Researchers", "The committee", "Local residents", "The delegation"]
VERBS = ["announced", "rejected", "welcomed", "questioned", "postponed", "approved", "criticised", "reviewed",
         "confirmed", "proposed", "signed", "denied"]
OBJECTS = ["a new budget for infrastructure", "the proposed trade agreement", "plans to expand the port",
           "the latest inflation figures", "a ceasefire along the border", "tighter rules on energy exports",
           "an inquiry into the contract", "the merger of two regional banks", "a programme of school repairs",
           "sanctions on shipping firms", "the draft climate law", "talks on fishing quotas"]
PLACES = ["Vienna", "Nairobi", "Lima", "Oslo", "Hanoi", "Accra", "Tbilisi", "Quito", "Riga", "Dhaka", "Tunis"]
TAILS = ["on Tuesday", "after weeks of debate", "despite strong opposition", "in a statement",
         "according to people familiar with the matter", "at a press conference", "late on Friday"]


def sentence(rng: random.Random) -> str:
    figure = f"{rng.randint(2, 950)},{rng.randint(100, 999)}"
    return (f"{rng.choice(SUBJECTS)} in {rng.choice(PLACES)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
            f"{rng.choice(TAILS)}, citing {figure} {rng.choice(['jobs', 'households', 'tonnes', 'euros'])}.")


def article(rng: random.Random, n: int, paragraphs: int = 6) -> dict:
    title = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} in {rng.choice(PLACES)} ({n})"
    body = "\n\n".join(" ".join(sentence(rng) for _ in range(rng.randint(2, 4))) for _ in range(paragraphs))
    return {"id": f"bench-{n:06d}", "title": title, "text": body, "date": f"2025-{1 + n % 12:02d}-{1 + n % 28:02d}",
            "publisher": "Benchmark Wire"}


def write_corpus(folder: Path, articles: int, per_file: int = 500, seed: int = 7,
                 make: Callable[[random.Random, int], dict] = article) -> None:
    """JSON Lines files of synthetic articles (each made by `make(rng, n)`)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for lo in range(0, articles, per_file):
        with open(folder / f"part-{lo // per_file:04d}.jsonl", "w", encoding="utf-8") as fh:
            for n in range(lo, min(lo + per_file, articles)):
                fh.write(json.dumps(make(rng, n)) + "\n")


def summary(ms: list[float]) -> str:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"p50 {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms (n={len(ordered)})"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
