"""Text as the models and the matchers see it: normalisation, folding, stop words, words and terms, slugs.
The one home of each: stored and shown text is never changed; these functions only shape what is compared or
fed to a model."""

from __future__ import annotations

import re
import threading
import unicodedata

# English function words and question words: they carry no evidence of what a passage is about.
STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have having he
her here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
now of off on once only or other our ours ourselves out over own same she should so some such than that the
their theirs them themselves then there these they this those through to too under until up very was we were
what when where which while who whom whose why will with would you your yours yourself yourselves many much
said says say according tell told
""".split())

# Words that only say who reported a claim, or point at the passage itself: "According to the report, ..." is no
# evidence that a passage supports it. Ignored (with STOPWORDS) when a model's sentence is matched to a passage;
# not in STOPWORDS, so BM25 (and every built index) is unchanged by them.
REPORTING_WORDS = frozenset("""
stated noted added wrote writes passage passages article report reports reported reporting
""".split())

_TERM = re.compile(r"(?u)\b\w\w+\b")  # bm25s's own token pattern
_WORD = re.compile(r"\w+")
# a figure whole (55,000 and 3.5 stay one word), else a run of letters
_CLAIM_WORD = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")
_QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "\u00a0": " "})
_LOCAL = threading.local()


def normalise(text: str) -> str:
    """What the encoders and BM25 see: NFKC (which also turns NBSP into a space)."""
    return unicodedata.normalize("NFKC", text)


def normalise_with_map(text: str) -> tuple[str, list[int]]:
    """NFKC applied character by character, with the offset in `text` of every character of the result, so
    that a span found in the normalised text maps back to an exact span of the original."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        n = unicodedata.normalize("NFKC", ch) if not ch.isascii() else ch
        out.append(n)
        where.extend([i] * len(n))
    return "".join(out), where


def fold(text: str) -> str:
    """Case, quotes, dashes and whitespace folded: for matching answer strings, never for display."""
    return " ".join(unicodedata.normalize("NFKC", text).translate(_QUOTES).lower().split())


def word_bounded(needle: str, haystack: str) -> bool:
    """`needle` occurs in `haystack` (both folded) and starts and ends at word boundaries."""
    n, h = fold(needle), fold(haystack)
    if not n:
        return False
    start = h.find(n)
    while start >= 0:
        end = start + len(n)
        before = h[start - 1] if start else " "
        after = h[end] if end < len(h) else " "
        if not (before.isalnum() and n[0].isalnum()) and not (after.isalnum() and n[-1].isalnum()):
            return True
        start = h.find(n, start + 1)
    return False


def words(text: str) -> list[str]:
    """The words (runs of letters, digits and `_`) of the lower-cased normalised text, in order: for word
    overlap between texts (near-duplicate passages, redundant quotes)."""
    return _WORD.findall(normalise(text).lower())


def claim_words(text: str) -> list[str]:
    """The content words of a claim, for checking it against a passage: case-folded, crudely stemmed (plural
    dropped, cut to six letters), stop and reporting words left out; a figure is kept whole, without its
    thousands commas ("55,000" -> "55000"), so that a figure the passage lacks can be told apart."""
    out: list[str] = []
    for w in _CLAIM_WORD.findall(normalise(text).casefold()):
        if w[0].isdigit():
            out.append(w.replace(",", ""))
        elif len(w) > 1 and w not in STOPWORDS and w not in REPORTING_WORDS:
            if len(w) > 4 and w.endswith("ies"):
                w = w[:-3] + "y"
            elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
                w = w[:-1]
            out.append(w[:6])
    return out


def slug(text: str, limit: int = 60, keep: str = "") -> str:
    """`text` folded to lower-case ASCII, each run of other characters (than those in `keep`) one `-`, at most
    `limit` characters, trimmed of `-` and `keep` at both ends; "" when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    trim = "-" + keep
    folded = re.sub(f"[^a-z0-9{re.escape(keep)}]+", "-", ascii_text).strip(trim)
    return folded[:limit].strip(trim)


def stemmer():  # type: ignore[no-untyped-def]
    """This thread's English (Snowball) stemmer, the one BM25 uses: PyStemmer objects must not be shared
    between threads."""
    found = getattr(_LOCAL, "stemmer", None)
    if found is None:
        import Stemmer

        found = _LOCAL.stemmer = Stemmer.Stemmer("english")
    return found


def content_terms(text: str) -> list[str]:
    """Lower-cased, stemmed words of two or more characters, stop words left out: exactly the terms BM25
    indexes for `text` (bm25s's tokenizer in rag.lexical gives the same, which the tests hold it to)."""
    found = [w for w in _TERM.findall(normalise(text).lower()) if w not in STOPWORDS]
    return stemmer().stemWords(found) if found else []
