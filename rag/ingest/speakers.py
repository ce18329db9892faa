"""Who a speaker mention refers to: an article's own name mentions, and speakers merged across articles.

Rules as in newsroom quote attribution (the Gender Gap Tracker, BBC Citron): a name mention is a run of
capitalised words; titles and nationalities in front of a person's name are roles, not the name; a surname, a
pronoun or a title ("the envoy", "the ministry") stands for a full name the same article gives; a generic
source ("critics", "media outlets", "estimates") has no speaker."""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence


@functools.lru_cache(maxsize=None)
def _rx(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """A compiled pattern, kept: the sentence splitter's own patterns would push ours out of `re`'s cache."""
    return re.compile(pattern, flags)


def _re_match(pattern: str, string: str, flags: int = 0):  # type: ignore[no-untyped-def]
    return _rx(pattern, flags).match(string)


def _re_search(pattern: str, string: str, flags: int = 0):  # type: ignore[no-untyped-def]
    return _rx(pattern, flags).search(string)


def _re_fullmatch(pattern: str, string: str, flags: int = 0):  # type: ignore[no-untyped-def]
    return _rx(pattern, flags).fullmatch(string)


def _re_finditer(pattern: str, string: str, flags: int = 0):  # type: ignore[no-untyped-def]
    return _rx(pattern, flags).finditer(string)


def _re_findall(pattern: str, string: str, flags: int = 0):  # type: ignore[no-untyped-def]
    return _rx(pattern, flags).findall(string)


def _re_split(pattern: str, string: str, flags: int = 0):  # type: ignore[no-untyped-def]
    return _rx(pattern, flags).split(string)


def _re_sub(pattern: str, repl: str, string: str, flags: int = 0) -> str:
    return _rx(pattern, flags).sub(repl, string)

_WORD = r"[A-Z][\w.’'\-]*\w|[A-Z]"
_SP = "[ \xa0]+"
RUN = re.compile(rf"(?:{_WORD})(?:{_SP}(?:(?:of|on|for|and|the|de|van|von|bin|al){_SP}){{0,2}}(?:{_WORD}))*")
_SPACES = re.compile(r"\s*")
POSSESSIVE = re.compile(r"^(?:’s|'s|’|')")

# Capitalised words that open sentences or name no one.
COMMON = frozenset("""the a an in on at of for to by with from after before however but and or as if when while
this that these those his her its their our my your he she it they we i you there here last next earlier later
asked speaking according meanwhile also then so yet still both another other each every some many most all
no not one two three read more watch full history data research analysis evidence reports report experts
critics officials figures estimates studies study survey poll polls sources analysts observers january
february march april may june july august september october november december monday tuesday wednesday
thursday friday saturday sunday throughout despite given around between since following under over about
almost only what who which where why how mr mrs ms dr""".split())
TITLES = frozenset("""president vice minister prime foreign defense defence interior finance deputy ambassador
envoy secretary secretary-general general admiral colonel major captain lieutenant sergeant chancellor senator
governor mayor king queen prince princess sheikh pope bishop judge justice chairman chairwoman chair ceo head
chief director spokesman spokeswoman spokesperson special representative commissioner commander mp mep
lawmaker congressman congresswoman speaker leader premier professor dr mr mrs ms sir lord lady former acting
state assistant executive senior coach manager captain analyst economist historian psychiatrist doctor
professor lawyer attorney activist journalist editor reporter trader founder owner""".split())
NATIONALITY = frozenset("""french dutch greek thai swiss iraqi israeli saudi british irish polish danish finnish
swedish turkish spanish scottish welsh english kuwaiti qatari pakistani afghan czech slovak european western
eastern german""".split())
ORG_WORDS = frozenset("""ministry office institute institution university journal times post news agency
bureau council committee commission parliament duma senate congress court service services group company
corporation corp inc ltd bank fund organization organisation union league association center centre bulletin
health party army navy forces police department kremlin government administration tass reuters bloomberg
press network channel television tv radio foundation society school academy nations alliance coalition""".split())
PERSON_NOUNS = frozenset("""envoy ambassador diplomat minister spokeswoman spokesman spokesperson leader president
head chief secretary premier official chancellor senator governor mayor general admiral commander director
analyst expert historian psychiatrist professor researcher lawmaker mp king queen prince ceo chairman""".split())
ORG_NOUNS = frozenset("ministry institute institution agency office company organization organisation "
                      "department bureau council committee government kremlin journal outlet newspaper".split())
RESEARCH_NOUNS = frozenset("authors author survey poll study report results findings researchers".split())
GENERIC = frozenset("""critics reports report estimates estimate experts expert officials observers analysts
sources outlets media people residents witnesses commentators sceptics skeptics opponents supporters voices
figures data polls studies surveys insiders diplomats lawmakers""".split())
SYNONYMS = ({"envoy", "ambassador", "diplomat"}, {"spokeswoman", "spokesman", "spokesperson"},
            {"leader", "president", "premier", "head", "chief"}, {"minister"}, {"secretary", "secretary-general"})
MONTHS_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "January",
               "February", "March", "April", "May", "June", "July", "August", "September", "October",
               "November", "December")
PRONOUNS = {"he": "person", "she": "person", "him": "person", "her": "person", "his": "person",
            "it": "org", "its": "org", "they": "any", "their": "any"}
RELATIVES = frozenset({"which", "who", "that"})


@dataclass(frozen=True)
class Entity:
    """A name an article gives: `name` as canonical text, whether it is a person, and the role words seen
    around its mentions ("russian", "foreign", "minister")."""

    name: str
    person: bool
    roles: frozenset[str]


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    entity: Entity
    possessive: bool


def _is_title(token: str) -> bool:
    low = token.lower().strip(".")
    return (low in TITLES or low in NATIONALITY or low.endswith(("ian", "ese")) or
            (token.isupper() and len(token) <= 5 and token.isalpha()))


def _national(word: str) -> bool:
    return word in NATIONALITY or word.endswith(("ian", "ese")) or word in ("us", "uk", "eu", "american")


def _has_org_word(tokens: Sequence[str]) -> bool:
    return any(t.lower() in ORG_WORDS for t in tokens)


class ArticleNames:
    """The name mentions of one article, for resolving speaker mentions to full names."""

    def __init__(self, text: str, spans: Sequence[tuple[int, int]]) -> None:
        self.text = text
        self.mentions: list[Mention] = []
        self.aliases: dict[str, str] = {}  # "KIIS" -> "Kiev International Institute of Sociology"
        self.counts: Counter[str] = Counter()
        runs = [(m.start(), m.end()) for s, e in spans for m in RUN.finditer(text, s, e)]
        lo, hi = (min(a for a, _ in spans), max(b for _, b in spans)) if spans else (0, 0)
        lowered = set(_re_findall(r"\b[a-z][\w’'-]*", text[lo:hi]))
        self._full: dict[int, Entity] = {}
        people: dict[str, Entity] = {}
        for s, e in runs:
            for part_s, part_e in self._split(s, e):
                mention = self._mention(part_s, part_e, lowered, people)
                if mention is not None:
                    self.mentions.append(mention)
                    self.counts[mention.entity.name] += 1
        for m in self.mentions:  # "Long Name (ACR)"
            after = _re_match(r"\s*\(([A-Z]{2,8})\)", text[m.end:m.end + 12])
            if after and not m.entity.person:
                self.aliases[after.group(1)] = m.entity.name

    def _split(self, s: int, e: int) -> list[tuple[int, int]]:
        """A run joined by "and" stays whole only when it names an organisation ("Office on Drugs and Crime")."""
        chunk = self.text[s:e]
        poss = _re_search(r"(?:’s|'s)\s+", chunk)
        if poss:  # "RT’s Rick Sanchez": two names
            return self._split(s, s + poss.start()) + self._split(s + poss.end(), e)
        cut = _re_search(r"\s+(?:of|on|for|and|the)\s+(?:the\s+)?(?:" + "|".join(MONTHS_DAYS) + r")\b", chunk)
        if cut:
            return self._split(s, s + cut.start())
        if " and " not in chunk or _has_org_word(chunk.split()):
            return [(s, e)]
        out, pos = [], s
        for part in chunk.split(" and "):
            out.append((pos, pos + len(part)))
            pos += len(part) + 5
        return out

    def _mention(self, s: int, e: int, lowered: set[str], people: dict[str, Entity]) -> Mention | None:
        tokens = self.text[s:e].split()
        while tokens and tokens[0].lower() in COMMON:
            s = _SPACES.match(self.text, s + len(tokens[0])).end()  # type: ignore[union-attr]
            tokens = tokens[1:]
        if not tokens:
            return None
        possessive = bool(POSSESSIVE.match(self.text[e:e + 2]))
        if tokens[-1].endswith(("’s", "'s")):
            tokens[-1], possessive = tokens[-1][:-2], True
        if len(tokens) == 1 and (tokens[0].lower() in lowered or tokens[0].lower() in COMMON
                                 or (_is_title(tokens[0]) and not tokens[0].isupper())
                                 or tokens[0].endswith("ing")):
            return None
        window = _re_split(r"[,.;:–(\n]", self.text[max(0, s - 60):s].lower())[-1].split()[-6:]
        roles = {w.strip(",.’'") for w in window} | {t.lower() for t in tokens if _is_title(t)}
        if _has_org_word(tokens) or len(tokens) == 1:
            return Mention(s, e, Entity(" ".join(tokens), False, frozenset()), possessive)
        name = list(tokens)
        while len(name) > 1 and _is_title(name[0]):
            name = name[1:]
        if len(name) == 3 and _re_search(r"\b(?:to|of|in|for|from)\s+(?:the\s+)?$", self.text[max(0, s - 12):s]):
            name = name[1:]  # "Ambassador to Chile Anna Lind": the place before the name
        if len(name) == 1 and len(tokens) > 1 and not _is_title(tokens[-1]):
            name = tokens[-1:]  # "President Putin": a titled surname
        person = len(name) > 1 or any(t.lower() in TITLES for t in tokens)
        if all(_is_title(t) for t in name):
            return Mention(s, e, Entity(" ".join(tokens), False, frozenset()), possessive)
        after = self.text[e:e + 80]
        appos = _re_match(r",\s+(?:the|a|an)\s+([^,.;]+)", after)
        if appos:
            roles |= set(appos.group(1).lower().split())
        return Mention(s, e, Entity(" ".join(name), person, frozenset(roles)), possessive)

    # --- resolution -------------------------------------------------------------------------------------

    def full_name(self, mention: Mention) -> Entity:
        """A surname or a short organisation name resolved to the fullest name the article gives it."""
        key = mention.start
        if key not in self._full:
            self._full[key] = self._full_name(mention)
        return self._full[key]

    @functools.cached_property
    def people(self) -> frozenset[str]:
        return frozenset(self.full_name(m).name for m in self.mentions if self.full_name(m).person)

    @functools.cached_property
    def _longer(self) -> dict[str, list[Mention]]:
        """Each word to the mentions of longer names it can stand for: a person's surname, an organisation's
        first word."""
        out: dict[str, list[Mention]] = {}
        for m in self.mentions:
            words = m.entity.name.split()
            if len(words) > 1:
                out.setdefault(words[-1] if m.entity.person else words[0], []).append(m)
        return out

    def _full_name(self, mention: Mention) -> Entity:
        ent = mention.entity
        if ent.name in self.aliases:
            return Entity(self.aliases[ent.name], False, ent.roles)
        words = ent.name.split()
        if len(words) > 1 or ent.name.isupper():
            return ent
        candidates = self._longer.get(ent.name, [])
        if not candidates:
            return ent
        before = [m for m in candidates if m.start <= mention.start]
        best = max(before, key=lambda m: m.start) if before else min(candidates, key=lambda m: m.start)
        return best.entity

    def entities_in(self, start: int, end: int) -> list[Mention]:
        return [m for m in self.mentions if start <= m.start and m.end <= end]

    def by_role(self, words: Sequence[str], at: int, want_person: bool) -> str | None:
        """The person (or organisation) a title such as "the Russian foreign minister" stands for."""
        if want_person:
            head = words[-1]
            group = next((g for g in SYNONYMS if head in g), {head})
            nations = {w for w in words if _national(w)}
            scored = []
            for m in self.mentions:
                full = self.full_name(m)
                roles = full.roles | m.entity.roles
                if not full.person or not group & roles or (nations and {r for r in roles if _national(r)} - nations):
                    continue
                scored.append((len(set(words) & roles), -abs(m.start - at), full.name))
            if scored:
                return max(scored)[2]
            people = Counter(self.full_name(m).name for m in self.mentions if self.full_name(m).person)
            return people.most_common(1)[0][0] if people else None
        head = words[-1]
        orgs = [m for m in self.mentions if not m.entity.person and len(m.entity.name.split()) > 1
                and _has_org_word(m.entity.name.split())]
        named = [m for m in orgs if head in {w.lower() for w in m.entity.name.split()}]
        if not named and head in RESEARCH_NOUNS | {"institute"}:
            named = orgs
        if not named:
            return None
        before = [m for m in named if m.start <= at]
        best = max(before, key=lambda m: m.start) if before else min(named, key=lambda m: m.start)
        return self.full_name(best).name

    def _is_person(self, name: str) -> bool:
        return name in self.people

    def nearest(self, at: int, person: bool) -> str | None:
        """The fullest name of the person (or organisation) mentioned last before `at`."""
        for m in sorted(self.mentions, key=lambda m: -m.start):
            if m.end <= at:
                full = self.full_name(m)
                if full.person == person:
                    return full.name
        return None

    def is_person(self, name: str | None) -> bool:
        return bool(name) and self._is_person(name)  # type: ignore[arg-type]


def speaker_key(name: str) -> str:
    """A comparable form of a speaker name: case, a leading "the", possessives and punctuation dropped, titles
    in front of a person's name left out ("Russian Foreign Minister Sergey Lavrov" -> "sergey lavrov")."""
    words = _re_sub(r"(?:’s|'s)\b", "", name).replace("’", "'").split()
    while words and words[0].lower() in {"the", "a", "an"}:
        words = words[1:]
    if not _has_org_word(words):
        while len(words) > 1 and _is_title(words[0]):
            words = words[1:]
    return " ".join(_re_sub(r"[^\w'\-.]", "", w).lower() for w in words).strip(" .")


def merge_speakers(names: Iterable[str | None]) -> dict[str, str]:
    """Each speaker name (of statements from many articles) mapped to its canonical name: the same key is one
    speaker; a lone surname joins the one full name that ends with it, and stays apart when several do."""
    seen: dict[str, Counter[str]] = {}
    for name in names:
        if name:
            seen.setdefault(speaker_key(name), Counter())[name] += 1
    by_last: dict[str, set[str]] = {}
    for key in seen:
        if len(key.split()) > 1:
            by_last.setdefault(key.split()[-1], set()).add(key)
    canonical: dict[str, str] = {}
    for key, forms in seen.items():
        target = key
        if len(key.split()) == 1 and len(by_last.get(key, ())) == 1:
            target = next(iter(by_last[key]))
        best = seen[target].most_common()
        label = max(best, key=lambda p: (p[1], -len(p[0])))[0]
        for form in forms:
            canonical[form] = speaker_key(label) and _display(label)
    return canonical


def _display(name: str) -> str:
    words = name.split()
    if not _has_org_word(words):
        while len(words) > 1 and _is_title(words[0]):
            words = words[1:]
    return " ".join(words)
