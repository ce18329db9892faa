"""A turn of a conversation before it is answered: the typed question resolved into the standalone question to
retrieve and read with (by rule, or by the optional language model under the same added-words rule), the
articles the last answer cited (for retrieval to favour), and, when a reference points at nothing in the
conversation, the short request to name who or what is meant that is given instead of an answer."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, fields, replace

from ..errors import LLMUnavailable
from ..records import Answer
from ..settings import LLMSettings
from .conversation import Conversation, Resolution
from .resolution import added_words, resolve

CLARIFY_MODE = "clarify"  # the mode of an answer that asks the user to name who or what is meant
_MAX_REWRITE = 400  # characters: a standalone question is a sentence, not a reply
_REWRITE_PROMPT = """You rewrite the last question of a conversation about news articles into one standalone \
question that can be understood without the conversation. Rules:
1. Replace pronouns and references such as "he", "that poll" or "there" by what they mean in the conversation.
2. Use only words from the conversation. Add no name, figure or fact that the conversation does not contain.
3. If the question already stands alone, repeat it unchanged.
4. Reply with the question only, on one line."""


@dataclass(frozen=True)
class TurnPlan(Resolution):
    """How a typed question is answered in its conversation: its `Resolution` (`standalone` is retrieved and read
    with, `boost_doc_ids` are favoured by retrieval, `unresolved`, when set, is said instead of answering), the
    notices of the optional language-model rewrite, and the time the rule-based resolution took."""

    notices: tuple[str, ...] = ()
    resolve_ms: float = 0.0


def context(conversation: Conversation) -> Conversation:
    """The turns a follow-up can refer to: all but the requests to name who or what was meant."""
    return Conversation(tuple(t for t in conversation.turns if t.answer.mode != CLARIFY_MODE))


def _rewrite_messages(question: str, conversation: Conversation) -> list[dict[str, str]]:
    lines = []
    for t in conversation.turns[-3:]:
        lines.append(f"User: {t.standalone}")
        quotes = " ".join(f"“{c.quote}”" for c in t.answer.shown[:2])
        lines.append(f"Assistant: {quotes or t.answer.text}")
    user = ("Conversation so far:\n" + "\n".join(lines) + f"\n\nLast question: {question}\n\n"
            "Rewrite the last question as one standalone question.")
    return [{"role": "system", "content": _REWRITE_PROMPT}, {"role": "user", "content": user}]


def llm_rewrite(question: str, conversation: Conversation, settings: LLMSettings) -> str:
    """The language model's standalone form of `question` (unchecked); LLMUnavailable when it cannot be had."""
    from .llm import _complete

    if not settings.base_url or not settings.model:
        raise LLMUnavailable("No language model is configured (RAG_LLM_BASE_URL and RAG_LLM_MODEL)")
    reply = _complete(_rewrite_messages(question, conversation), settings).strip()
    line = next((x for x in reply.splitlines() if x.strip()), "")
    return re.sub(r"^(?:standalone question|question|rewrite)\s*:\s*", "", line.strip().strip("\"“”'"), flags=re.I)


def plan_turn(question: str, conversation: Conversation | None, mode: str | None = None,
              llm: LLMSettings | None = None) -> TurnPlan:
    """The standalone question for `question` after `conversation` (the cleaned typed question)."""
    began = time.perf_counter()
    ctx = context(conversation or Conversation())
    r = resolve(question, ctx)
    plan = TurnPlan(**{f.name: getattr(r, f.name) for f in fields(r)}, resolve_ms=(time.perf_counter() - began) * 1000)
    if r.unresolved or not ctx.turns or mode != "llm" or llm is None:
        return plan
    try:
        proposed = llm_rewrite(question, ctx, llm)
    except LLMUnavailable as exc:
        return replace(plan, notices=(f"The follow-up was not rewritten by the language model ({exc}); "
                                    "the rule-based form is used.",))
    if not proposed or len(proposed) > _MAX_REWRITE:
        return replace(plan, notices=("The language model gave no usable standalone question; the rule-based "
                                    "form is used.",))
    invented = added_words(proposed, question, ctx)
    if invented:
        words = {w.casefold() for w in invented}
        typed = [w for w in dict.fromkeys(re.findall(r"\w[\w’'-]*", proposed)) if w.casefold() in words]
        shown = ", ".join((typed or invented)[:5])
        return replace(plan, notices=(f"The language model's rewrite “{proposed}” adds words found nowhere in the "
                                    f"conversation ({shown}); the rule-based form is used.",))
    depends = plan.depends or proposed != question
    boost = plan.boost_doc_ids or tuple(dict.fromkeys(c.doc_id for c in ctx.turns[-1].answer.shown))
    return replace(plan, standalone=proposed, depends=depends, boost_doc_ids=boost if depends else ())


def clarification(plan: TurnPlan, id: str | None = None) -> Answer:
    """The answer that asks the user to name who or what is meant: abstained, no citations, no passages."""
    return Answer(question=plan.question, text=plan.unresolved or "", abstained=True, citations=(), passages=(),
                  mode=CLARIFY_MODE, id=id, standalone=plan.question, notices=plan.notices)
