"""Rule-based resolution of a follow-up question into a standalone one, without a language model.

A turn depends on earlier ones when it points back: a personal pronoun or possessive without a name before it
in the same question ("What did he say?"), a pointing word ("that poll", "the same treaty", "such troops",
"there", "after that"), an ellipsis ("And the UK?", "What about Belarus?"), a bare "why?" or "who else?", a
comparison with the last answer, or a question too short or too vague (no name, no figure) to say what it is
about. The rewrite
- puts the name of the person meant in place of he/him/his/she/her (the person the last answer named when the
  last question asked who, else the person the last question was about, else one the answers quote);
- puts an elliptical "What about Belarus?" into the last question, in place of the name of the same kind;
- adds, in parentheses, what the last question was about (its words, and for a comparison the last answer's
  figures), so that retrieval and the reader see the topic.
Every content word it adds is taken from the conversation (`added_words` checks it, for rules and models alike).
"""

from __future__ import annotations

import re
from functools import lru_cache

from .conversation import Conversation, Resolution
from ..common.text import STOPWORDS, fold

_TOKEN = re.compile(r"[A-Za-z\u00C0-\u024F][\w’'.-]*[\w]|[A-Za-z]|\d[\d,.]*\d%?|\d%?")
_NAME = re.compile(r"(?:[A-Z][\w’'-]*[\w]|[A-Z])(?:\s+(?:[A-Z][\w’'-]*[\w]|[A-Z]\.?))*")
# Words starting a question or a sentence, written with a capital but not names.
_NOT_NAMES = frozenset("""
what which who whom whose where when why how is are was were do does did has have had can could will would
should shall may might must and but or so also then the a an in on at for of to by from with about after before
since despite if yes no not it its he his she her they their this that these those there here i we you
""".split())
_TITLES = frozenset("""
president minister admiral general ambassador spokeswoman spokesman spokesperson envoy chancellor secretary
senator mr mrs ms dr chief leader commander director chairman chairwoman king queen pope prince princess premier
governor mayor colonel lieutenant diplomat adviser advisor aide official lawmaker deputy negotiator analyst
professor judge prosecutor ceo founder candidate officer lady madam madame dame baroness
""".split())
_FEMALE_TITLES = frozenset("mrs ms queen princess lady madam madame dame baroness spokeswoman chairwoman".split())
_FEMALE_NAMES = frozenset("""
maria marie mary anna anne ann elena helena olga irina natalia natalya tatiana tatyana svetlana yulia julia
ekaterina katerina kateryna valentina ludmila lyudmila oksana iryna angela ursula kaja kamala hillary nancy
theresa liz elizabeth giorgia marine annalena ella alice emma sarah sara jane janet susan karen laura linda
christine christina kristalina nikki tulsi marjorie kristi pam karoline samantha margaret victoria catherine
nadia nadezhda galina larisa inna alla zoya vera veronika daria darya sophie sofia ana isabel beatriz
""".split())
_COUNTRIES = frozenset("""
russia ukraine us usa america britain uk england france germany china iran israel europe eu nato un belarus
poland italy spain japan india turkey syria iraq georgia moldova hungary finland sweden norway denmark estonia
latvia lithuania canada mexico brazil egypt qatar uae emirates saudi korea taiwan gaza palestine lebanon yemen
washington moscow kiev kyiv london paris berlin beijing tehran brussels minsk warsaw ankara
""".split())
_SPEECH = frozenset("""
say says said tell told tells state stated add added claim claimed warn warned note noted argue argued insist
insisted accuse accused write wrote declare declared announce announced urge urged stress stressed suggest
suggested liken likened propose proposed try tried hint hinted promise promised offer offered explain explained
admit admitted think thinks believe believes call called describe described make made give given reply replied
""".split())
_AUX = frozenset("is are was were do does did has have had can could will would should shall may might must "
                 "be been being am".split())
_WH = frozenset("what which who whom whose where when why how".split())
_PREPS = frozenset("in on at for of to by from with about after before since despite under over into like "
                   "than between among during against toward towards upon within without".split())
_TIME_NOUNS = frozenset("week weekend month year morning afternoon evening night time day season spring summer "
                        "autumn fall winter decade century".split())
_COMPLEMENT = frozenset("say says said think thinks thought report reports reported claim claimed believe "
                        "believes argue argued warn warned suggest suggested show shows showed find found "
                        "so such fact know known clear likely possible true hope hopes feared fear".split())
_MALE = {"he": "subject", "him": "object", "his": "possessive", "himself": "object"}
_FEMALE = {"she": "subject", "her": "either", "hers": "object", "herself": "object"}
_THING = frozenset("it its they them their theirs itself themselves".split())
_ELLIPSIS = re.compile(r"^\s*(?:and|but|also|so|or)\b|^\s*(?:what|how)\s+about\b|^\s*same\s+(?:for|with)\b", re.I)
_BARE_WH = re.compile(r"^\s*(?:and\s+)?(?:why|how|when|where|who|what)(?:\s+(?:not|so|exactly))?\s*[?.!]*\s*$",
                      re.I)
_ELSE = re.compile(r"\b(?:who|what|where|which\s+\w+|anyone|anything|anybody|somebody|someone|something)\s+else\b",
                   re.I)
_SAME = re.compile(r"\b(?:the\s+same|such(?:\s+a)?|this\s+same|that\s+same)\s+([a-z][\w-]*)", re.I)
_COMPARISON = re.compile(r"\b(?:more or less|more than that|less than that|(?:higher|lower|bigger|smaller|larger|"
                         r"greater|fewer|more|less|older|newer|earlier|later)\s+than\s+(?:that|this|it|before)|"
                         r"compared?\s+(?:to|with)\s+(?:that|this|it)|match|that (?:rise|fall|increase|drop|"
                         r"decrease|figure|number|share|change|gap|difference))\b", re.I)
_FIGURE = re.compile(r"\d[\d,.]*\d%?|\d%?|\b(?:\w+\s)?(?:percent|per cent)\b")
_TOPIC_WORDS = 8  # most topic words carried into one rewrite
_NAMES_ONLY = 3  # most names carried into a question that says most of what it asks
_SHORT = 5  # content words up to which a question with its person named still gets the topic
# verbs and vague words that say nothing of the topic
_VAGUE = frozenset("""
get got take took make happen happened thing things something way ways going go goes become became officially
still ever really actually just
""".split())


def _words(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _content(text: str) -> list[str]:
    """Folded content words and figures of `text`, possessive endings dropped."""
    out = []
    for w in _words(fold(text)):
        w = re.sub(r"['’]s$", "", w).strip(".'’-")
        if w and w not in STOPWORDS and w not in _AUX:
            out.append(w.replace(",", "") if w[0].isdigit() else w)
    return tuple(out)


def _conversation_text(conversation: Conversation) -> str:
    parts = []
    for t in conversation.turns:
        parts += [t.question, t.standalone, t.answer.text]
        parts += [c.quote for c in t.answer.shown] + [c.title for c in t.answer.shown]
    return "\n".join(parts)


def added_words_ok(standalone: str, question: str, conversation: Conversation) -> bool:
    """True when every content word (name, figure, term) that `standalone` adds to `question` occurs somewhere
    in the conversation: a rewrite, by rule or by a language model, must not bring in a new fact."""
    return not added_words(standalone, question, conversation)


def added_words(standalone: str, question: str, conversation: Conversation) -> list[str]:
    """The content words (names, figures, terms) of `standalone` found neither in `question` nor anywhere in
    the conversation: what a rewrite would bring in from outside. Function words are free."""
    known = set(_content(question)) | set(_content(_conversation_text(conversation)))
    return [w for w in dict.fromkeys(_content(standalone)) if w not in known]


@lru_cache(maxsize=4096)
def _names(text: str) -> tuple[tuple[str, int], ...]:
    """Capitalised runs with their offsets, split at titles ("Ambassador"), function words and a leading place
    ("UK Andrey Kelin" -> "UK", "Andrey Kelin")."""
    found = []
    for m in _NAME.finditer(text):
        segment: list[tuple[str, int]] = []
        pieces = [(w.group(), m.start() + w.start()) for w in re.finditer(r"\S+", m.group())]
        for n, (word, at) in enumerate(pieces):
            low = re.sub(r"['’](?:s|re|ll|ve|d)$", "", fold(word).strip("."))  # "What's" is no name
            if low in _NOT_NAMES or low in _TITLES:
                found.append(segment)
                segment = []
                continue
            segment.append((word, at))
            if low in _COUNTRIES and n + 1 < len(pieces) and fold(pieces[n + 1][0]) not in _COUNTRIES:
                found.append(segment)
                segment = []
        found.append(segment)
    out = []
    for segment in found:
        if segment:
            name = re.sub(r"['’]s$", "", " ".join(w for w, _ in segment).rstrip("."))
            if len(name) > 1:
                out.append((name, segment[0][1]))
    return tuple(out)


def _is_place(name: str) -> bool:
    low = fold(name)
    return any(w in _COUNTRIES for w in low.split()) or name.isupper() or low.endswith(("ian", "ese", "ish")) \
        and len(low.split()) == 1


@lru_cache(maxsize=4096)
def _persons(text: str) -> tuple[tuple[str, bool], ...]:
    """(name, female) for the names in `text` that a cue marks as people: a title before it, a speech or action
    verb after it, or "did X <verb>"; female by title, first name, or a Slavic feminine surname."""
    out: list[tuple[str, bool]] = []
    for name, start in _names(text):
        if _is_place(name):
            continue
        before = [w.lower().strip(".,") for w in _words(text[:start])[-4:]]
        after = [w.lower() for w in _words(text[start + len(name):])[:2]] + ["", ""]
        first = fold(name.split()[0])
        titled = any(b in _TITLES for b in before)
        agent = after[0] in _SPEECH or (after[0] in _AUX and after[1] in _SPEECH) or \
            (bool(before) and before[-1] in _AUX and after[0] not in _AUX and after[0] not in _PREPS
             and after[0].isalpha())
        female = any(b in _FEMALE_TITLES for b in before) or first in _FEMALE_NAMES or \
            bool(re.search(r"(?:ova|eva|ina|aya|skaya)$", fold(name.split()[-1])))
        if titled or agent or first in _FEMALE_NAMES or len(name.split()) >= 2 and female:
            out.append((name, female))
    return tuple(out)


def _full_name(name: str, text: str) -> str:
    """The longest form of `name` the conversation uses ("Kostyukov" -> "Igor Kostyukov")."""
    best = name
    last = name.split()[-1]
    for found, _ in _names(text):
        if found.split()[-1] == last and len(found) > len(best) and not _is_place(found.split()[0]):
            words = found.split()
            if len(words) <= 4 and all(fold(w) not in _TITLES for w in words):
                best = found
    return best


def _asks_who(question: str) -> bool:
    return bool(re.search(r"\b(?:who|whom)\b|\bwhich\s+(?:official|person|man|woman|leader|envoy|minister|"
                          r"diplomat|associate|politician)", question, re.I))


def _referent(female: bool, conversation: Conversation) -> str | None:
    """The person a he/she points at: the one the last answer named when the last question asked who; else the
    person the last question was about; else one its answer quotes; then the same in earlier turns."""
    everything = _conversation_text(conversation)
    for turn in reversed(conversation.turns):
        quotes = " ".join(c.quote for c in turn.answer.shown)
        asked = [p for p in _persons(turn.standalone) if p[1] == female]
        answered = [p for p in _persons(quotes) if p[1] == female and p[0] not in turn.standalone]
        order = (answered + asked) if _asks_who(turn.standalone) else (asked + answered)
        if order:
            return _full_name(order[0][0], everything)
    return None


def _strip_front(question: str) -> str:
    """The question without its wh-word and auxiliary, and without an earlier parenthesised topic."""
    body = re.sub(r"\s*\([^()]*\)", "", question).strip().rstrip("?.! ")
    body = re.sub(r"^(?:and|but|so|also)\s+", "", body, flags=re.I)
    return body


def _topic_words(text: str) -> list[str]:
    """The words of `text` that say what it is about: names, figures and nouns; function words, question words,
    and (crudely) past participles and adverbs left out."""
    out = []
    for w in text.split():
        w = w.strip("?,.;:()\"“”")
        key = _content(w)
        low = fold(w)
        if not key or low in _WH or low in _SPEECH or low in _VAGUE or (w.islower() and len(w) > 4 and
                                                                     low.endswith(("ed", "ly"))):
            continue
        out.append(w)
    return tuple(out)


def _topic(conversation: Conversation, question: str, figures: bool, names_only: bool) -> str:
    """What the last turn was about (its question, then the topic it carried), in words of the conversation
    the question does not already hold; only names when the question says most of what it asks."""
    last = conversation.turns[-1]
    have = set(_content(question))
    sources = [_strip_front(last.standalone)]
    carried = re.search(r"\(([^()]*)\)", last.standalone)
    if carried:
        sources.append(carried.group(1))
    words: list[str] = []
    for src in sources:
        for w in ([n for n, _ in _names(src)] if names_only else _topic_words(src)):
            key = " ".join(_content(w))
            if not key or key in have:
                continue
            have.add(key)
            words.append(w)
    if figures:
        for c in last.answer.shown[:1]:
            for m in _FIGURE.finditer(c.quote):
                if fold(m.group()) not in have:
                    have.add(fold(m.group()))
                    words.append(m.group())
    return " ".join(words[:_NAMES_ONLY if names_only else _TOPIC_WORDS])


def _anaphoric_that(words: list[str], i: int) -> bool:
    prev = words[i - 1].lower() if i else ""
    nxt = words[i + 1].lower() if i + 1 < len(words) else ""
    if not nxt:
        return True
    if prev in _COMPLEMENT:
        return False
    if i == 0 or prev in _AUX or prev in _PREPS or prev in _WH or prev in _SPEECH or prev in ("like", "despite"):
        return nxt not in _NOT_NAMES or nxt in _AUX or nxt in _PREPS
    return False


def _dependency(question: str) -> tuple[str | None, list[tuple[int, str]]]:
    """(kind of dependency or None, positions of person pronouns to replace) of the question's words."""
    spans = list(_TOKEN.finditer(question))
    words = [m.group() for m in spans]
    lows = [w.lower() for w in words]
    persons = {p for p, _ in _persons(question)}
    people = [(i, w) for i, w in enumerate(lows) if w in _MALE or w in _FEMALE]
    pronouns = [(i, w) for i, w in people if not _persons(question[:spans[i].start()])]
    if pronouns:
        return "pronoun", pronouns
    if _COMPARISON.search(question):
        return "comparison", []
    if _ELSE.search(question):
        return "who else", []
    if _BARE_WH.match(question):
        return "bare " + lows[-1] if lows else "bare", []
    if _SAME.search(question):
        return "same", []
    for i, w in enumerate(lows):
        if w in _THING and not any(0 < s < spans[i].start() and n not in persons for n, s in _names(question)):
            return "pronoun", []
        if w == "that" and _anaphoric_that(words, i):
            return "that", []
        if w in ("this", "these", "those") and (i + 1 == len(lows) or lows[i + 1] not in _TIME_NOUNS):
            return "that", []
        if w == "there" and not (i + 1 < len(lows) and lows[i + 1] in _AUX) and not (i and lows[i - 1] in _AUX):
            return "there", []
    if _ELLIPSIS.match(question):
        return "ellipsis", []
    names = [n for n, s in _names(question) if s > 0]
    content = _content(question)
    if not names and not _FIGURE.search(question) and len(content) <= 5:
        return "topic", []
    if len(content) <= 3:
        return "topic", []
    return None, []


def _replace_pronouns(question: str, pronouns: list[tuple[int, str]], conversation: Conversation
                      ) -> tuple[str, str | None]:
    """The question with each he/she word replaced by the person's name; or a request to name the person."""
    spans = list(_TOKEN.finditer(question))
    out, last = [], 0
    for i, w in sorted(pronouns):
        female = w in _FEMALE
        name = _referent(female, conversation)
        if name is None:
            who = "woman" if female else "man"
            return question, (f"Who do you mean by “{spans[i].group()}”? No {who} has been named in this "
                              "conversation: ask again with the name.")
        nxt = spans[i + 1].group().lower() if i + 1 < len(spans) else ""
        role = (_MALE | _FEMALE)[w]
        if role == "either":
            role = "possessive" if nxt and nxt.isalpha() and nxt not in _PREPS and nxt not in STOPWORDS \
                and nxt not in _AUX else "object"
        text = name + "’s" if role == "possessive" else name
        out += [question[last:spans[i].start()], text]
        last = spans[i].end()
    out.append(question[last:])
    return "".join(out), None


def _ellipsis_swap(question: str, conversation: Conversation) -> str | None:
    """"What about Belarus?" / "And the UK?" after "How many Chinese firms ...?": the last question with the
    new name in place of the name of the same kind (a place for a place, else the last name)."""
    m = re.match(r"^\s*(?:and|but|what about|how about|same for|same with)\s+(?:the\s+)?(.+?)[?.!\s]*$",
                 question, re.I)
    if not m or len(_content(m.group(1))) > 3 or re.search(r"\b(?:" + "|".join(_AUX | _WH) + r")\b",
                                                           m.group(1), re.I):
        return None
    new = m.group(1).strip()
    base = re.sub(r"\s*\([^()]*\)", "", conversation.turns[-1].standalone).strip()
    names = [(n, s) for n, s in _names(base) if s > 0]
    if not names:
        return None
    same = [(n, s) for n, s in names if _is_place(n) == _is_place(new)] or names[-1:]
    name, start = same[0] if _is_place(new) else same[-1]
    return base[:start] + new + base[start + len(name):]


def resolve(question: str, conversation: Conversation) -> Resolution:
    """The standalone form of `question` given the conversation so far (rule-based, no language model; see the
    module's rules)."""
    text = " ".join(question.split())
    if not conversation.turns or not text:
        return Resolution(question=question, standalone=question)
    last = conversation.turns[-1]
    boost = tuple(dict.fromkeys(c.doc_id for c in last.answer.shown))
    kind, pronouns = _dependency(text)
    if kind is None:
        return Resolution(question=question, standalone=question)
    if kind == "ellipsis":
        swapped = _ellipsis_swap(text, conversation)
        if swapped is not None:
            return Resolution(question, swapped, True, kind, None, boost)
    standalone, unresolved = text, None
    if pronouns:
        standalone, unresolved = _replace_pronouns(text, pronouns, conversation)
        if unresolved:
            return Resolution(question, question, True, kind, unresolved, boost)
    left = kind
    if pronouns:  # the person is named now: a topic only for what else points back
        left, _ = _dependency(standalone)
        if left is None and len(_content(standalone)) > _SHORT:
            return Resolution(question, standalone, True, kind, None, boost)
    names_only = len(_content(standalone)) >= 5 and left in ("pronoun", "same", "there")
    topic = _topic(conversation, standalone, kind == "comparison", names_only)
    if topic:
        body = standalone.rstrip(" ?.!")
        end = standalone[len(body):].strip() or "?"
        standalone = f"{body} ({topic}){end}"
    return Resolution(question, standalone, True, kind, None, boost)
