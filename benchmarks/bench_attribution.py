"""What "who said what" costs a build: statement extraction against a full build's time, on generated articles
that quote people (default 5,000), and extraction alone per article.

    python benchmarks/bench_attribution.py [--articles N] [--build-articles M] [--keep DIR]

Extraction is timed over all N articles with their sentence spans passed in, as a build does. The build is
timed on the first M of them (M = N for the whole figure; fewer on a slow machine): a full build reports the
seconds it spent extracting (`BuildReport.attribution_seconds`), so the share comes from the same run.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PLACES, article, sentence, write_corpus  # noqa: E402

import rag  # noqa: E402
from rag.index.encoders import load_embedder  # noqa: E402
from rag.index.statements import canonical_speakers  # noqa: E402
from rag.ingest.attribution import extract_statements  # noqa: E402
from rag.ingest.sentences import sentence_spans  # noqa: E402

FIRST = ["Anna", "Marek", "Sofia", "Jonas", "Leila", "Tomas", "Irina", "Kofi", "Elena", "Omar"]
LAST = ["Berg", "Novak", "Haddad", "Lind", "Mensah", "Petrov", "Costa", "Ahmed", "Vogel", "Silva"]
ROLES = ["Finance Minister", "central bank governor", "opposition leader", "ministry spokeswoman",
         "Mayor", "union chief", "analyst", "Foreign Minister"]


def speech(rng: random.Random) -> str:
    """A paragraph that quotes someone the way news does: named with a role, then by surname or pronoun."""
    first, last, role = rng.choice(FIRST), rng.choice(LAST), rng.choice(ROLES)
    claim = sentence(rng).rstrip(".")
    lines = [f"{role} {first} {last} said that {claim[0].lower() + claim[1:]}.",
             f"“{sentence(rng)[:-1]},” {last} told reporters in {rng.choice(PLACES)}.",
             f"He added that the plan would {rng.choice(['fail', 'work', 'cost more', 'need time'])}.",
             f"According to {last}, {sentence(rng)[0].lower() + sentence(rng)[1:]}",
             f"Critics say {sentence(rng)[0].lower() + sentence(rng)[1:]}"]
    return " ".join(rng.sample(lines, 3))


def quoting_article(rng: random.Random, n: int) -> dict:
    """A generated article with two paragraphs of attributed speech after its body."""
    row = article(rng, n, paragraphs=4)
    row["text"] += "\n\n" + "\n\n".join(speech(rng) for _ in range(2))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=5000)
    parser.add_argument("--build-articles", type=int, default=None, help="articles in the timed build (all)")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="rag-bench-attr-"))
    corpus = work / "corpus"
    write_corpus(corpus, args.articles, make=quoting_article)
    articles = list(rag.iter_articles(corpus, warn=lambda _m: None))
    prepared = [(a.source_text, a.document.spans,
                 [sp for s, e in a.document.spans for sp in sentence_spans(a.source_text, s, e)]) for a in articles]
    chars = sum(a.document.end - a.document.start for a in articles) / len(articles)
    best, names = float("inf"), Counter()
    for _ in range(3):  # the best of three runs: the machine is shared
        t0 = time.perf_counter()
        said = [extract_statements(text, spans, sents) for text, spans, sents in prepared]
        best = min(best, time.perf_counter() - t0)
        names = Counter(s.speaker for statements in said for s in statements if s.speaker)
    found = sum(len(statements) for statements in said)
    t0 = time.perf_counter()
    merged = canonical_speakers(names.items())
    print(f"speakers merged across the archive: {len(names)} names -> {len({c for _n, c, _k in merged})} "
          f"speakers in {(time.perf_counter() - t0) * 1000:.0f} ms (once, at the end of a build)")
    per_article = best / len(articles) * 1000
    print(f"extraction: {len(articles)} articles ({chars:,.0f} characters on average), {found} statements, "
          f"{per_article:.2f} ms an article (sentence spans passed in)")

    m = args.build_articles or args.articles
    build_corpus = corpus if m >= args.articles else work / "build-corpus"
    if build_corpus != corpus:
        write_corpus(build_corpus, m, make=quoting_article)
    settings = rag.load_settings().with_paths(build_corpus, work / "index")
    load_embedder(settings.embedding)  # the model load is not the build's
    report = rag.build_index(settings, full=True)
    share = report.attribution_seconds / report.seconds
    rest = report.seconds - report.attribution_seconds
    print(f"full build of {report.documents} articles: {report.seconds:.1f} s ({report.seconds / report.documents * 1000:.1f} ms "
          f"an article), of which extraction {report.attribution_seconds:.2f} s: {share:.1%} of the build, "
          f"{report.attribution_seconds / rest:.1%} added to a build without it; {report.statements} statements, "
          f"{report.speakers} speakers")
    print(f"extraction alone against the build's time an article: {per_article / (rest / report.documents * 1000):.1%}")
    print(f"work folder {work}")


if __name__ == "__main__":
    main()
