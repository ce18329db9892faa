"""Who said what: the attributed statements of an article, each with its speaker and exact offsets.

Three kinds, as labelled in `dev_attributions.jsonl`: "direct" (the words inside quotation marks, a quote split
around "he said" giving one statement a part), "indirect" (the clause a reporting verb introduces: "X said
that ...", "..., X warned", "X accused Y of ..."), and "according_to" ("according to X, ..."). The rules follow
newsroom quote extraction (BBC Citron, the Gender Gap Tracker, Quootstrap): a reporting-verb lexicon, the
sentence splitter, and the article's own name mentions for the speaker (`rag.ingest.speakers`; the lexicon and patterns in `rag.ingest.cues`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Sequence


from .sentences import sentence_spans
from .speakers import (_re_finditer, _re_fullmatch, _re_match, _re_search, _re_split,  # noqa: F401
                       _re_sub)
from .cues import (ACCORDING, AUX, BOUNDARY, CUT, FINITE, KINDS, NOUN_CUE, PREP_AFTER,  # noqa: F401
                   QUOTE, TELL, ADVERBIAL, CLAUSE_WORDS, cues, _np_verb, _speakerlike, _trim, _words)
from .speakers import ORG_NOUNS, PERSON_NOUNS, PRONOUNS, RESEARCH_NOUNS, ArticleNames

# Changes whenever the rules change what they extract: a build re-extracts carried articles whose statements an
# older version found.
VERSION = "1"


@dataclass(frozen=True)
class Statement:
    """One attributed statement: `source_text[start:end] == text`. `speaker` is the full name the article
    gives, or None when it names no one ("critics say"); `mention` is the words that name the speaker there,
    `cue` the reporting verb or phrase."""

    speaker: str | None
    kind: str
    start: int
    end: int
    text: str
    cue: str = ""
    mention: str = ""


@dataclass
class _Candidate:
    start: int
    end: int
    kind: str
    cue: str
    np: str = ""
    np_start: int = -1
    inherit: bool = False  # speaker is the previous one in the sentence, or the sentence's subject
    follow: bool = False  # a quote with no cue: the article's last speaker goes on
    sentence: tuple[int, int] = (0, 0)
    possessive: bool = False
    cue_at: int = -1


class _Extractor:
    def __init__(self, text: str, spans: Sequence[tuple[int, int]]) -> None:
        self.text = text
        self.spans = spans
        self.names = ArticleNames(text, spans)
        self.quotes: list[tuple[int, int]] = []  # every quoted region (marks included)
        self.candidates: list[_Candidate] = []

    # --- direct quotes, per paragraph -------------------------------------------------------------------
    def quote_regions(self, s: int, e: int) -> list[tuple[int, int]]:
        line = self.text[s:e]
        out = [(s + m.start(), s + m.end()) for m in QUOTE.finditer(line)]
        first_close, first_open = line.find("”"), line.find("“")
        if first_close >= 0 and (first_open < 0 or first_close < first_open):
            out.insert(0, (s, s + first_close + 1))  # a quote carried over from the paragraph before
        last_open = line.rfind("“")
        if last_open >= 0 and line.find("”", last_open) < 0:
            out.append((s + last_open, e))  # a quote that runs on into the next paragraph
        return out

    def direct(self, s: int, e: int, sentences: list[tuple[int, int]]) -> None:
        t = self.text
        for qs, qe in self.quote_regions(s, e):
            self.quotes.append((qs, qe))
            cs, ce = _trim(t, qs, qe)
            if ce - cs < 2:
                continue
            sent = next(((a, b) for a, b in sentences if a <= qs < b), (qs, qe))
            after, before = t[qe:e], t[s:qs]
            m = _np_verb(after, 110)
            inv = _re_match(r"\s*(?P<v>said|says|added|wrote|told|asked)\s+(?P<np>[^“”\",.]{1,80})", after)
            tail_q = t[qe - 2:qe - 1] in ",?!" or t[qe - 1:qe] != "”" or t[qe - 2:qe - 1] == "."
            opens = _re_search(r"(?:^|[,:;–—]|[.!?]”?)\s*$", t[sent[0]:qs]) is not None or qs <= sent[0]
            tail_q = tail_q and opens
            if m and _speakerlike(m.group("np")) and tail_q and not BOUNDARY.match(m.group("np") + " "):
                self.candidates.append(_Candidate(cs, ce, "direct", m.group("v"), m.group("np"),
                                                  qe + m.start("np"), sentence=sent))
                continue
            if inv and _speakerlike(inv.group("np")) and tail_q:
                self.candidates.append(_Candidate(cs, ce, "direct", inv.group("v"), inv.group("np"),
                                                  qe + inv.start("np"), sentence=sent))
                continue
            lead_in = before.rstrip()
            b = (_re_search(r"(?P<np>[^“”\",.;]{1,110}?)\s+" + AUX + r"(?P<v>" + FINITE.pattern + r")\s*[:,]\s*$",
                            before[-160:]) if lead_in.endswith((":", ",")) else None)
            if b and _speakerlike(b.group("np")):
                self.candidates.append(_Candidate(cs, ce, "direct", b.group("v"), b.group("np"),
                                                  s + max(0, len(before) - 160) + b.start("np"), sentence=sent))
                continue
            ends_clause = _re_fullmatch(r"[\s.!?]*", t[qe:sent[1]] if qe < sent[1] else "") is not None
            lead = _re_search(r"\b(?:(?P<v>adding|saying|noting|stressing|warning|insisting|and|added|said)"
                             r"(?:\s+that)?|that)(?:\s+[^“”.]{0,100},)?\s*$", before)
            if lead and ends_clause and len(before.strip()) > 0:
                self.candidates.append(_Candidate(cs, ce, "direct", lead.group(0).strip(), inherit=True,
                                                  sentence=sent, cue_at=s + lead.start()))
                continue
            whole = not before.strip() or _re_search(r"[.!?]”?\s*$", before)
            if whole and ends_clause and len(t[cs:ce].split()) >= 3:
                self.candidates.append(_Candidate(cs, ce, "direct", "", follow=True, sentence=sent))

    def in_quote(self, pos: int) -> bool:
        return any(a < pos < b for a, b in self.quotes)

    # --- indirect speech and "according to", per sentence ------------------------------------------------
    def trailing(self, s: int, e: int) -> int | None:
        """'CLAUSE, X said.': the clause as a statement; returns where the reporting verb ends."""
        t = self.text
        for c in _re_finditer(r",[”\"]?\s+", t[s:e]):
            at = s + c.end()
            if at - s < 12 or any(d.kind == "direct" and d.cue and 0 <= s + c.start() - d.end <= 2
                                  for d in self.candidates):
                continue
            m = _np_verb(t[at:e], 150)
            inv = _re_match(r"(?P<v>said|says|added|wrote)\s+(?P<np>[^,.“”]{2,80})[.]?\s*$", t[at:e])
            if m:
                np, rest = m.group("np"), t[at + m.end():e]
                first_clause = _re_split(r",\s", rest)[0]
                adverbial = (not first_clause.strip(" .") or m.group("v") in TELL
                             or _words(first_clause)[0] in ADVERBIAL)
                if (not adverbial or not _speakerlike(np) or " that " in f" {first_clause} "
                        or len(first_clause.split()) > 10
                        or set(_words(first_clause)) & CLAUSE_WORDS or self.in_quote(at + m.start("v"))):
                    continue
                ss, se = _trim(t, s, s + c.start())
                self.candidates.append(_Candidate(ss, se, "indirect", m.group("v"), np, at, sentence=(s, e)))
                return at + m.end()
            if inv and _speakerlike(inv.group("np")):
                ss, se = _trim(t, s, s + c.start())
                self.candidates.append(_Candidate(ss, se, "indirect", inv.group("v"), inv.group("np"),
                                                  at + inv.start("np"), sentence=(s, e)))
                return e
        return None

    def clause_end(self, start: int, e: int) -> int:
        m = CUT.search(self.text, start, e)
        while m and self.in_quote(m.end() - 1):
            m = CUT.search(self.text, m.end(), e)
        return m.start() if m else e

    def subject(self, s: int, v: int) -> tuple[str, int]:
        """The noun phrase before a reporting verb at `v`, back to the clause boundary."""
        t = self.text
        head = _re_sub(r"\s+" + AUX + r"$", "", t[s:v].rstrip() + " ").rstrip()
        head = _re_sub(r"(?:\s+(?:has|have|had|also|long|repeatedly|publicly|reportedly|previously|already|"
                      r"recently|now|openly|both|further|again))+$", "", head)
        if _re_search(r"(?:[,;–][’”\"]*|\band|\bbut|\bwhile|\bthough|\bthus)(?:\s+also)?$", head):
            return "", -1  # "..., adding", "... and said": the speaker is the clause's subject
        cut = 0
        for m in BOUNDARY.finditer(head):
            if m.group(0).startswith("and") and _re_search(r"[A-Z]\S*\s+$", head[:m.start()]) \
                    and _re_match(r"and\s+(?:the\s+)?[A-Z]", m.group(0) + head[m.end():]):
                continue  # "Russia and the US"
            if not self.in_quote(s + m.start()):
                cut = m.end()
        np = head[cut:]
        if (not np.strip() or not _speakerlike(np)) and cut:
            prev = head[:cut].rstrip(" ,")
            if _re_search(r"\b(?:which|who)\s*$", head[:cut]):
                prev = _re_sub(r",?\s*(?:which|who)\s*$", "", head[:cut])
            elif np.strip() and not np.strip()[0].islower():
                return np, s + cut
            elif not np.strip():
                return "", -1
            pc = 0
            for m in BOUNDARY.finditer(prev):
                pc = m.end()
            return prev[pc:] + " " + np, s + pc
        return np, s + cut

    def forward(self, s: int, e: int, taken: list[tuple[int, int]]) -> None:
        t = self.text
        pos = s
        for v0, v1 in cues(t, s, e):
            if v0 < pos or self.in_quote(v0) or any(a <= v0 < b for a, b in taken):
                continue
            verb = t[v0:v1]
            after = t[v1:e]
            if (_re_match(r"\s+by\b|\s*[.;]|\s*$|-", after) or (v0 > 0 and t[v0 - 1] in "-")
                    or (after.startswith(",") and not _re_match(r",(?:\s+\w+){1,2},\s+that\b", after))):
                continue  # passive ("cited by"), or nothing reported
            if _re_search(r"\b(?:the|a|an|his|her|its|their|our|this|these|those)\s+$", t[max(s, v0 - 8):v0],
                         re.IGNORECASE):
                continue  # a noun ("the report", "his remarks")
            np, np_start = self.subject(s, v0)
            with_np = _re_search(r"\bwith\s+([^,“”]+?)\s*$", t[s:v0]) if verb.endswith("ing") else None
            if with_np:
                np, np_start = with_np.group(1), s + with_np.start(1)
            inherit = not np.strip()
            before = t[max(s, v0 - 12):v0]
            if inherit and not (verb.endswith("ing") or _re_search(r"(?:and|but|,)\s+(?:also\s+)?$", before)):
                continue
            if not inherit and not _speakerlike(np):
                continue
            if not inherit and verb.endswith("ing") and not _re_search(r"\b(?:with|by)\b", np):
                continue  # "the figures showing", a gerund, not a speaker
            start = v1
            pm = PREP_AFTER.match(t, start)
            if pm and verb.split()[0] in ("allude", "alluded", "alludes", "alluding", "warned", "warning",
                                          "warns", "warn", "hinted", "hinting", "complained", "commented"):
                start = pm.end()
            that = _re_match(r"(?:[^,.;“”]{0,80}?\s)?that\s+", t[start:e] + " ")
            if that and len(t[start:start + that.end()].split()) <= 12:
                start += that.end()
            elif verb in TELL:
                obj = _re_match(r"\s*(?:(?:[A-Z][\w’'.-]*\s+)+|(?:him|her|them|us|me|reporters|journalists)\s+"
                               r"|the\s+\w+\s+)", t[start:e])
                start += obj.end() if obj else 0
            else:
                adv = _re_match(r"\s*(?:(?:on|last|this|earlier|previously|also)\s+(?:\w+day|week|month|year)?\s*)*",
                               t[start:e])
                start += adv.end() if adv else 0
            end = self.clause_end(start, e)
            ss, se = _trim(t, start, end)
            if se - ss < 3:
                continue
            self.candidates.append(_Candidate(ss, se, "indirect", verb, np, np_start, inherit, sentence=(s, e),
                                              cue_at=v0))
            taken.append((ss, se))
            pos = se

    def nouns(self, s: int, e: int, taken: list[tuple[int, int]]) -> None:
        t = self.text
        if t.find("that", s, e) < 0:  # every noun cue is "... that": most sentences have none
            return
        for m in NOUN_CUE.finditer(t, s, e):
            if self.in_quote(m.start()) or any(a <= m.start() < b for a, b in taken):
                continue
            lead = t[max(s, m.start() - 80):m.start()]
            owner = _re_search(r"((?:[A-Z][\w.’'-]*\s+)*[A-Z][\w.’'-]*)(?:’s|'s)?\s+(?:[a-z]+\s+)?$", lead)
            if not owner:
                continue
            end = t.find(", ", m.end(), e)
            ss, se = _trim(t, m.end(), end if end > 0 else e)
            np_start = max(s, m.start() - 80) + owner.start(1)
            self.candidates.append(_Candidate(ss, se, "indirect", m.group(0).split()[0], owner.group(1),
                                              np_start, sentence=(s, e), possessive=True))
            taken.append((m.start(), se))

    def according(self, s: int, e: int, taken: list[tuple[int, int]]) -> None:
        t = self.text
        if t.find("ccording", s, e) < 0 and t.find(" by", s, e) < 0:
            return
        for m in ACCORDING.finditer(t, s, e):
            if self.in_quote(m.start()):
                continue
            comma = t.find(",", m.end(), e)
            np_end = comma if comma > 0 else e
            np = t[m.end():np_end]
            if comma > 0 and len(np.split()) <= 12:
                ss, se = _trim(t, comma + 1, self.clause_end(comma + 1, e))
            else:
                np = t[m.end():e].rstrip(" .")
                lead = t[s:m.start()].rstrip(" ,")
                ss, se = _trim(t, s, s + len(lead))
            if se - ss < 3:
                continue
            self.candidates.append(_Candidate(ss, se, "according_to", m.group(0).strip(), np, m.end(),
                                              sentence=(s, e)))
            taken.append((ss, se))
            taken.append((m.start(), m.end() + len(np)))

    def run(self, sentences: list[tuple[int, int]]) -> list[_Candidate]:
        for a, b in self.spans:
            for line in _re_finditer(r"[^\n]+", self.text[a:b]):
                self.direct(a + line.start(), a + line.end(), sentences)
        direct = [c for c in self.candidates]
        for s, e in sentences:
            taken: list[tuple[int, int]] = [(c.start, c.end) for c in direct if s <= c.start < e]
            self.according(s, e, taken)
            verb_end = self.trailing(s, e)
            if verb_end is not None:
                taken.append((s, verb_end))
            self.nouns(s, e, taken)
            self.forward(s, e, taken)
        return self._settle(direct)

    def _settle(self, direct: list[_Candidate]) -> list[_Candidate]:
        """Indirect statements end where a cued quote begins; one mostly inside a quote goes."""
        out = list(direct)
        for c in self.candidates[len(direct):]:
            if any(d.inherit and d.cue_at == c.cue_at for d in direct):
                continue  # "adding that if ..., “quote”": the quote is the statement
            for d in direct:
                if c.start < d.start - 1 < c.end and d.cue:
                    c.start, c.end = _trim(self.text, c.start, self.text.rfind("“", c.start, d.start))
            covered = max((min(c.end, d.end) - max(c.start, d.start) for d in direct), default=0)
            if c.end - c.start >= 3 and covered < (c.end - c.start) / 2:
                out.append(c)
        return sorted(out, key=lambda c: (c.start, c.end))


def extract_statements(text: str, spans: Sequence[tuple[int, int]] | None = None,
                       sentences: Sequence[tuple[int, int]] | None = None) -> tuple[Statement, ...]:
    """The attributed statements of one article whose indexed parts are `spans` of `text` (the whole text
    when None), in text order, offsets into `text`. `sentences`: the article's sentence spans when the caller
    has them already (a build does), else they are computed with `sentence_spans`."""
    spans = [(0, len(text))] if spans is None else list(spans)
    if sentences is None:
        sentences = [sp for a, b in spans for sp in sentence_spans(text, a, b)]
    ex = _Extractor(text, spans)
    return tuple(_resolve(ex, ex.run(list(sentences))))


def _resolve(ex: _Extractor, cands: list[_Candidate]) -> Iterator[Statement]:
    names, text = ex.names, ex.text
    last: dict[str, str | None] = {"person": None, "org": None, "any": None}
    by_sentence: dict[tuple[int, int], str | None] = {}
    seen: set[tuple[int, int]] = set()
    for c in cands:
        if (c.start, c.end) in seen:
            continue
        seen.add((c.start, c.end))
        if c.follow:
            speaker, mention = last["any"] or names.nearest(c.start, True), ""
        elif c.inherit:
            if c.sentence in by_sentence:
                speaker = by_sentence[c.sentence]
            else:
                np, at = _first_subject(ex, c.sentence[0], c.start)
                speaker = _speaker(ex, np, at, last) if np else None
            mention = ""
        else:
            speaker, mention = _speaker(ex, c.np, c.np_start, last, c.possessive), c.np.strip()
        by_sentence.setdefault(c.sentence, speaker)
        if speaker:
            last["person" if names.is_person(speaker) else "org"] = speaker
        last["any"] = speaker
        yield Statement(speaker, c.kind, c.start, c.end, text[c.start:c.end], c.cue, mention)


def _first_subject(ex: _Extractor, s: int, before: int) -> tuple[str, int]:
    t = ex.text
    pron = _re_search(r"\b(?:he|she|it|they)\b", t[s:before], re.IGNORECASE)
    ments = [m for m in ex.names.mentions if s <= m.start < before and not m.possessive]
    cands = []
    if pron:
        cands.append((s + pron.start(), pron.group(0)))
    if ments:
        cands.append((ments[0].start, t[ments[0].start:ments[0].end]))
    return min(cands) [::-1] if cands else ("", -1)  # type: ignore[return-value]


def _speaker(ex: _Extractor, np: str, at: int, last: dict[str, str | None], possessive: bool = False) -> str | None:
    names = ex.names
    words = [w for w in _words(np) if w]
    while words and words[0] in ("both",):
        words = words[1:]
    if not words:
        return None
    if words[0] in PRONOUNS and (len(words) == 1 or words[0] == "its"):
        kind = PRONOUNS[words[0]]
        if kind == "person":
            return last["person"] or names.nearest(at, True)
        if kind == "org":
            return last["org"] or names.nearest(at, False)
        return last["any"]
    ments = [m for m in names.entities_in(at, at + len(np)) if possessive or not m.possessive]
    pair = _re_fullmatch(r"(?:both\s+)?(\S.*?\S)\s+and\s+(?:the\s+)?(\S.*?)", np.strip(" ,"), re.IGNORECASE)
    if len(ments) == 2 and pair and all(ex.text[m.start:m.end] in pair.groups() for m in ments):
        return ex.text[ments[0].start:at + len(np.rstrip(" ,"))]
    people = [names.full_name(m) for m in ments if names.full_name(m).person]
    if people:
        return people[-1].name
    if ments:
        orgs = [names.full_name(m) for m in ments if len(m.entity.name.split()) > 1]
        return (orgs[0] if orgs else names.full_name(ments[0])).name
    if words[0][:1].isdigit():
        return np.strip(" ,")
    if words[0] in ("the", "its", "this", "that"):
        heads = [w for w in words if w in PERSON_NOUNS]
        if heads:
            return names.by_role(words[1:words.index(heads[-1]) + 1], at, True)
        heads = [w for w in words if w in ORG_NOUNS | RESEARCH_NOUNS]
        if heads:
            if words[0] == "its":
                return last["org"] or names.by_role([heads[-1]], at, False)
            return names.by_role([heads[-1]], at, False)
    return None
