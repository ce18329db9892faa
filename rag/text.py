"""Text as the models and the matchers see it: normalisation, folding, terms. Stored and shown text is never
changed; these functions only shape what is compared or fed to a model."""

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

_TERM = re.compile(r"(?u)\b\w\w+\b")  # bm25s's own token pattern
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


def _stemmer():  # type: ignore[no-untyped-def]
    """This thread's stemmer: PyStemmer objects must not be shared between threads."""
    stemmer = getattr(_LOCAL, "stemmer", None)
    if stemmer is None:
        import Stemmer

        stemmer = _LOCAL.stemmer = Stemmer.Stemmer("english")
    return stemmer


def content_terms(text: str) -> list[str]:
    """Lower-cased, stemmed words of two or more characters, stop words left out (what BM25 indexes)."""
    words = [w for w in _TERM.findall(normalise(text).lower()) if w not in STOPWORDS]
    return _stemmer().stemWords(words) if words else []
