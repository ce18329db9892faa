"""The reporting-verb lexicon and the patterns of "who said what" (`rag.ingest.attribution`): cue verbs, clause
boundaries, what can be a speaker, and `NP [has] VERB` at the start of a string."""

from __future__ import annotations

import functools
import re

from .speakers import COMMON, GENERIC, ORG_NOUNS, PERSON_NOUNS, PRONOUNS, RESEARCH_NOUNS

KINDS = ("direct", "indirect", "according_to")
EDGE_LEAD = " \t\n\xa0“”‘’\"'"
EDGE_TRAIL = EDGE_LEAD + ",.;:"


def _forms(base: str) -> list[str]:
    irregular = {"say": ["said"], "tell": ["told"], "find": ["found"], "write": ["wrote", "written"],
                 "think": ["thought"], "admit": ["admitted", "admitting"], "hold": ["held"]}
    if base in irregular:
        extra = irregular[base]
        return [base, base + "s", base + "ing", *extra]
    if base.endswith("e"):
        return [base, base + "s", base + "d", base[:-1] + "ing"]
    if base.endswith("y") and base[-2] not in "aeiou":
        return [base, base[:-1] + "ies", base[:-1] + "ied", base + "ing"]
    return [base, base + "s", base + "ed", base + "ing"]


_BASES = """say tell state add warn claim note argue insist stress explain announce confirm deny report suggest
estimate believe acknowledge admit assert reiterate emphasize emphasise maintain suspect hint predict recognize
recognise reveal write declare complain concede observe remark reply respond contend allege conclude find recall
agree fear promise vow pledge threaten urge comment mention tweet speculate caution assure inform remind signal
accuse cite allude describe highlight reject propose offer question dismiss demand announce""".split()
VERB_FORMS = sorted({f for b in _BASES for f in _forms(b)} - {"state", "states"}, key=len, reverse=True)
_PHRASES = [r"rul(?:e|ed|es|ing) out", r"rais(?:e|ed|es|ing) concerns?(?: \w+)? (?:over|about|that)",
            r"point(?:s|ed|ing)? out", r"made (?:a|the) (?:\w+ ){0,2}(?:proposal|claim|pledge)"]
FINITE = re.compile(r"\b(?:" + "|".join(f for f in VERB_FORMS if not f.endswith("ing")) + r")\b")
# Cue verbs are found by looking each lower-case word up in a set (one pass of a simple pattern), not with one
# pattern of ~300 alternatives, which the regex engine tries at every position of the text.
VERBS = frozenset(VERB_FORMS)
FINITE_VERBS = frozenset(f for f in VERB_FORMS if not f.endswith("ing"))
PAST_VERBS = frozenset(f for f in VERB_FORMS if f.endswith("ed") or f in ("said", "told", "wrote", "found", "thought"))
PHRASE = re.compile(r"(?:" + "|".join(p.replace(" ", r"\s+") for p in _PHRASES) + r")\b")
_PHRASE_HEADS = frozenset({"rule", "ruled", "rules", "ruling", "raise", "raised", "raises", "raising", "point",
                           "points", "pointed", "pointing", "made"})
LOWER_WORD = re.compile(r"\b[a-z]+\b")


def cues(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """(start, end) of each reporting verb or phrase ("ruled out", "raised concerns about") in text[start:end],
    in order, not overlapping."""
    words = set(LOWER_WORD.findall(text, start, end))
    verbs = words & VERBS
    phrases = bool(words & _PHRASE_HEADS)
    if not verbs and not phrases:
        return []
    found = _pattern(tuple(sorted(verbs, key=lambda w: (-len(w), w))), phrases)
    return [(m.start(), m.end()) for m in found.finditer(text, start, end)]


@functools.lru_cache(maxsize=4096)
def _pattern(verbs: tuple[str, ...], phrases: bool) -> re.Pattern[str]:
    """The cue pattern narrowed to the verbs a sentence holds (the phrases first, as in the full lexicon)."""
    parts = ([PHRASE.pattern[3:-3]] if phrases else []) + list(verbs)
    return re.compile(r"\b(?:" + "|".join(parts) + r")\b")


def first_verb(text: str, words: frozenset[str], end: int) -> re.Match[str] | None:
    """The first lower-case word of text[:end] that is in `words`."""
    for m in LOWER_WORD.finditer(text, 0, end):
        if m.group() in words:
            return m
    return None
PREP_AFTER = re.compile(r"\s+(?:to|of|about|against|on)\b(?=\s)")
ADVERBIAL = {"in", "on", "at", "to", "during", "after", "before", "last", "this", "earlier", "late", "ahead",
             "while", "when", "via", "from", "with", "for", "recently", "previously", "yesterday", "today",
             "on", "speaking", "told", "writing", "according", "as", "citing", "adding", "noting", "however"}
TELL = {"tell", "told", "tells", "telling", "inform", "informed", "assure", "assured", "remind", "reminded"}
AUX = r"(?:(?:has|have|had|also|long|repeatedly|publicly|reportedly|previously|already|recently|later|then|" \
      r"further|again|once|earlier|openly|now|both)\s+)*"
CLAUSE_WORDS = {"is", "are", "was", "were", "would", "will", "can", "could", "should", "might", "may", "must",
                "be", "been", "did", "does", "do", "not"}
DETERMINERS = {"the", "a", "an", "its", "his", "her", "their", "our", "both", "another", "this", "that",
               "these", "those", "some", "many", "several", "most", "all"}
BOUNDARY = re.compile(r",\s+|;\s+|\s+–\s+|\s+-\s+|\b(?:that|and|but|while|as|because|after|before|when|which|"
                      r"who|whom|although|though|if|since)\s+")
_CUT = (r"(?:,\s*|\s+(?:and|but)\s+|,\s*(?:and|but|while|though|thus|with\s+\S+\s+\S+)\s+)(?:also\s+)?"
        r"(?:has\s+|have\s+)?(?:" + "|".join(f for f in VERB_FORMS if f.endswith("ing") or f.endswith("ed")
                                             or f in ("said", "told", "wrote", "found", "thought")) + r")\b"
        r"|,\s*and\s+that\b|\s+–\s+which\b|,\s*according to\b|\s+according to\b"
        r"|,\s+(?:he|she|it|they)\s+(?:has\s+|had\s+)?(?:said|added|told|stated|warned|claimed|noted)\b")
CUT = re.compile(_CUT)
NOUN_CUE = re.compile(r"\b(?:report|remarks|claims?|statements?|warning|assertion|allegations?|assessment)"
                      r"\s+that\s+")
ACCORDING = re.compile(r"\b(?:[Aa]ccording\s+to|as\s+(?:described|reported|stated|noted|put)\s+by)\s+")
QUOTE = re.compile(r"“[^“”]*”|\"[^\"\n]*\"")


def _trim(text: str, s: int, e: int) -> tuple[int, int]:
    while s < e and text[s] in EDGE_LEAD:
        s += 1
    while e > s and text[e - 1] in EDGE_TRAIL:
        e -= 1
    return s, e


def _words(s: str) -> list[str]:
    return [w.strip(",.;:’'\"“”()").lower() for w in s.split()]


def _speakerlike(np: str) -> bool:
    """Whether a noun phrase can be a speaker: a pronoun, a name, a number of people, or a noun of the kind
    that speaks ("the envoy", "officials", "a survey")."""
    words = [w for w in _words(np) if w]
    if not words or len(words) > 18 or any(c in np for c in "“”\""):
        return False
    if set(words) & CLAUSE_WORDS or any(w in PAST_VERBS for w in LOWER_WORD.findall(np)):
        return False
    first = np.lstrip(EDGE_LEAD)[:1]
    nouns = GENERIC | PERSON_NOUNS | ORG_NOUNS | RESEARCH_NOUNS | {"organizers", "respondents", "institute"}
    if words[0] in PRONOUNS and len(words) <= 2 and words[0] not in ("him", "her", "his", "their"):
        return True
    if words[0] in ("its", "his", "her", "their") and set(words) & (RESEARCH_NOUNS | PERSON_NOUNS):
        return True
    if first.islower() and words[0] not in DETERMINERS:
        return len(words) <= 4 and words[-1] in nouns  # "health experts", "critics"
    if not (first.isupper() or first.isdigit() or words[0] in DETERMINERS):
        return False
    named = any(w[:1].isupper() and w.lower().strip(",.’'") not in COMMON for w in np.split())
    return named or bool(set(words) & nouns) or first.isdigit()


class _NPVerb:
    """A noun phrase followed by a reporting verb at the start of a string (what a regex match would give)."""

    def __init__(self, text: str, np_start: int, np_end: int, v_start: int, v_end: int) -> None:
        self.text, self.spans = text, {"np": (np_start, np_end), "v": (v_start, v_end)}

    def group(self, name: str) -> str:
        a, b = self.spans[name]
        return self.text[a:b]

    def start(self, name: str) -> int:
        return self.spans[name][0]

    def end(self) -> int:
        return self.spans["v"][1]


_AUX_TAIL = re.compile(r"(?:\s+(?:has|have|had|also|long|repeatedly|publicly|reportedly|previously|already|"
                       r"recently|later|then|further|again|once|earlier|openly|now|both))*\s*$")


def _np_verb(text: str, limit: int) -> _NPVerb | None:
    """`NP [has] VERB` at the start of `text`, NP at most `limit` characters, no quotation marks, the first
    reporting verb taken."""
    v = first_verb(text, FINITE_VERBS, limit + 80)
    if v is None:
        return None
    lead = len(text) - len(text.lstrip())
    np_end = _AUX_TAIL.search(text, lead, v.start()).start()  # type: ignore[union-attr]
    if np_end <= lead or np_end - lead > limit or any(c in text[lead:np_end] for c in "“”\""):
        return None
    if not text[np_end:v.start()][:1].isspace():
        return None
    return _NPVerb(text, lead, np_end, v.start(), v.end())
