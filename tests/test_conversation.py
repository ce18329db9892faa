"""Conversations: follow-up resolution by rule (each kind of dependency, the added-words rule, unresolvable
references), JSON save and reopen, and a real multi-turn conversation over the bundled index."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

import rag
from rag.answer.conversation import Conversation, ConversationError, Turn, answer_from_dict
from rag.answer.resolution import added_words_ok, resolve
from rag.evaluation.dialogues import evaluate_dialogues, resolution_overlap
from rag.records import Answer, Chunk, Citation, Hit


def _answer(question: str, quote: str = "", doc_id: str = "src/article") -> Answer:
    text = f"Intro. {quote} Outro."
    start = text.index(quote)
    chunk = Chunk(f"{doc_id}#0", doc_id, 0, len(text), text)
    hit = Hit(1, chunk, "A title", "src.txt", 0.5, 0.4, 0.3, {"publisher": "RT", "date": "2026-01-30"})
    cites = (Citation(1, doc_id, chunk.chunk_id, "A title", "src.txt", start, start + len(quote), quote,
                      {"publisher": "RT"}, (start, start + 4), 0.91),) if quote else ()
    return Answer(question=question, text=f"“{quote}” [1]" if quote else "No answer.", abstained=not quote,
                  citations=cites, passages=(hit,), timings={"total_ms": 12.5}, evidence=0.61, confidence=0.9,
                  readings={chunk.chunk_id: 0.9})


def _talk(*exchanges: tuple[str, str]) -> Conversation:
    conversation = Conversation()
    for n, (question, quote) in enumerate(exchanges):
        conversation = conversation.add(Turn(question, question, _answer(question, quote, f"src/a{n}")))
    return conversation


DELEGATION = _talk(("Who is leading Russia's delegation at the trilateral talks in Abu Dhabi?",
                    "The Russian delegation is headed by Admiral Igor Kostyukov, the head of the country's "
                    "military intelligence."))
MACRON = _talk(("How many troops did Macron say France alone could send to Ukraine?",
                "Macron said France alone could send 6,000 troops."))
POLL = _talk(("What share of Ukrainians think their government is 'completely tainted', according to a new KIIS "
              "survey?", "Some 42% of respondents said the government was completely tainted, the KIIS poll found."))


def _ok(question: str, conversation: Conversation) -> rag.answer.conversation.Resolution:
    r = resolve(question, conversation)
    assert added_words_ok(r.standalone, question, conversation), r.standalone
    return r


def test_no_history_and_standalone_questions_go_through_unchanged() -> None:
    for q in ("What did he say?", "When does the New START treaty officially expire?"):
        r = resolve(q, Conversation())
        assert (r.standalone, r.depends, r.unresolved) == (q, False, None)
    q = "When does the New START treaty officially expire?"
    r = resolve(q, MACRON)
    assert (r.standalone, r.depends, r.kind, r.boost_doc_ids) == (q, False, None, ())
    # a pronoun with its name earlier in the same question refers inside it
    q = "What did Sergey Lavrov liken the Middle East to in his interview with RT?"
    assert resolve(q, MACRON).depends is False


def test_pronoun_after_a_who_question_is_the_person_the_answer_names() -> None:
    r = _ok("What's his regular job?", DELEGATION)
    assert r.depends and r.kind == "pronoun" and r.unresolved is None
    assert "Igor Kostyukov’s regular job" in r.standalone
    assert r.boost_doc_ids == ("src/a0",)


def test_a_follow_up_points_at_the_possible_answer_shown_and_never_at_a_bare_list() -> None:
    """A possible answer leads with the sentence the reader ranked first: "his" is the person it names, and
    retrieval favours its article. An abstention that only lists closest sentences gives "his" no referent."""
    question = "Who heads Russia's delegation at the Abu Dhabi talks?"
    shown = _answer(question, "The Russian delegation is headed by Admiral Igor Kostyukov.", "src/delegation")
    possible = replace(shown, abstained=True, possible=True, citations=(), closest=shown.citations)
    assert possible.shown == shown.citations and shown.shown == shown.citations
    r = _ok("What's his regular job?", Conversation().add(Turn(question, question, possible)))
    assert "Igor Kostyukov’s regular job" in r.standalone and r.boost_doc_ids == ("src/delegation",)
    listed = replace(possible, possible=False)
    assert listed.shown == ()
    r = resolve("What's his regular job?", Conversation().add(Turn(question, question, listed)))
    assert r.unresolved and r.boost_doc_ids == ()


def test_pronoun_is_the_person_the_last_question_was_about() -> None:
    r = _ok("Where would he station them?", MACRON)
    assert "Macron" in r.standalone and "he " not in r.standalone


def test_she_without_a_woman_asks_who_is_meant_and_with_one_is_resolved() -> None:
    r = resolve("What did she say about Europe?", MACRON)
    assert r.depends and r.unresolved and "she" in r.unresolved and r.standalone == "What did she say about Europe?"
    talk = _talk(("How did Maria Zakharova say Moscow would regard Western troops deployed to Ukraine?",
                  "Zakharova said they would be a legitimate military target."))
    r = _ok("What prompted her remarks?", talk)
    assert r.unresolved is None and "Maria Zakharova’s remarks" in r.standalone


def test_ellipsis_puts_the_new_name_in_the_last_question() -> None:
    talk = _talk(("How many Chinese firms are at the aviation show?", "Some 40 Chinese firms are exhibiting."))
    r = _ok("What about Belarus?", talk)
    assert (r.kind, r.standalone) == ("ellipsis", "How many Belarus firms are at the aviation show?")
    r = _ok("And the UK?", MACRON)
    assert r.standalone == "How many troops did Macron say UK alone could send to Ukraine?"


@pytest.mark.parametrize("question,kind", [
    ("Why?", "bare why"), ("When was that?", "that"), ("Who else?", "who else"),
    ("How many people were questioned for the same poll?", "same"),
    ("Is that more or less than the share who think it has real professionals?", "comparison"),
    ("Where is the show held?", "topic"),
])
def test_each_dependency_kind_carries_the_topic_from_the_conversation(question: str, kind: str) -> None:
    r = _ok(question, POLL)
    assert r.depends and r.kind == kind and r.unresolved is None
    assert "KIIS" in r.standalone and r.standalone.startswith(question.rstrip("?"))
    if kind == "comparison":
        assert "42%" in r.standalone  # the last answer's figure


def test_added_words_rule_refuses_a_name_or_figure_from_outside() -> None:
    q = "What did he say about Europe?"
    assert added_words_ok("What did Macron say about Europe?", q, MACRON)
    assert added_words_ok("What did Macron say about Europe (6,000 troops)?", q, MACRON)
    assert not added_words_ok("What did Putin say about Europe?", q, MACRON)
    assert not added_words_ok("What did Macron say about Europe in 2019?", q, MACRON)
    assert added_words_ok("What did he say about the Europe?", q, Conversation())  # function words are free


def test_resolution_is_fast() -> None:
    talk = DELEGATION.add(Turn("Who else?", "Who else?", _answer("Who else?", "Rustem Umerov is there.")))
    questions = ["What's his regular job?", "What did she say?", "And the UK?", "Why?", "When was that?"]
    resolve(questions[0], talk)
    times = []
    for q in questions * 20:
        t0 = time.perf_counter()
        resolve(q, talk)
        times.append(time.perf_counter() - t0)
    assert sorted(times)[len(times) // 2] < 0.020


def test_conversation_json_round_trip_keeps_answers_and_citations(tmp_path: Path) -> None:
    talk = MACRON.add(Turn("Where?", "Where (troops Macron)?", _answer("Where (troops Macron)?", "Far away.")))
    text = talk.to_json()
    again = Conversation.from_json(text)
    assert again.to_json() == text and len(again) == 2
    assert again.turns[1].standalone == "Where (troops Macron)?" and again.turns[1].depends
    c = again.turns[0].answer.citations[0]
    assert (c.quote, c.answer_span, c.metadata["publisher"]) == ("Macron said France alone could send 6,000 troops.",
                                                                 (talk.turns[0].answer.citations[0].start,) * 1 +
                                                                 (talk.turns[0].answer.citations[0].start + 4,),
                                                                 "RT")
    one = talk.turns[0].answer
    assert answer_from_dict(one.to_dict()).to_dict() == one.to_dict()
    # the whole conversation exports with every answer's citations
    assert "6,000 troops" in rag.export_answers(again.answers, "markdown")
    for bad in ("not json", json.dumps({"turns": []}), json.dumps({"format": "rag-conversation", "version": 1,
                                                                    "turns": [{"question": "q"}]})):
        with pytest.raises(ConversationError):
            Conversation.from_json(bad)


def test_resolution_overlap_counts_gold_terms() -> None:
    assert resolution_overlap("What is Igor Kostyukov's job?", "What post does Igor Kostyukov hold?") == 2 / 4


def test_a_real_conversation_follow_up_cites_the_right_article(engine: rag.Engine) -> None:
    conversation = Conversation()
    answers = []
    for question in ("Who heads Russia's delegation at the Abu Dhabi talks?",
                     "What's his regular job?"):
        r = resolve(question, conversation)
        assert r.unresolved is None and added_words_ok(r.standalone, question, conversation)
        answer = engine.ask(r.standalone)
        conversation = conversation.add(Turn(question, answer.question, answer))
        answers.append(answer)
    first, follow = answers
    assert not first.abstained and "Kostyukov" in first.citations[0].quote
    assert conversation.turns[1].depends and "Kostyukov" in conversation.turns[1].standalone
    assert not follow.abstained and "military intelligence" in follow.citations[0].quote
    assert follow.citations[0].doc_id == first.citations[0].doc_id
    # after a save and reopen, the follow-up's citation is still an exact span of its source
    c = Conversation.from_json(conversation.to_json()).turns[1].answer.citations[0]
    source = (Path(engine.settings.paths.corpus) / c.source).read_text(encoding="utf-8")
    assert source[c.start:c.end] == c.quote == follow.citations[0].quote

def test_dialogue_evaluation_reports_resolved_and_oracle_per_kind(bundled_index: rag.Settings,
                                                                   tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"id": "d1", "turns": [
        {"question": "Who heads Russia's delegation at the Abu Dhabi talks?", "kind": "answerable",
         "standalone": "Who heads Russia's delegation at the Abu Dhabi talks?",
         "groups": [["Igor Kostyukov", "Kostyukov"]]},
        {"question": "What's his regular job?", "kind": "answerable",
         "standalone": "What post does Admiral Igor Kostyukov, head of Russia's delegation at the Abu Dhabi talks, hold?",
         "groups": [["military intelligence"]]}]}) + "\n", encoding="utf-8")
    report = evaluate_dialogues(path, bundled_index)
    follow = report["kinds"]["follow-up"]
    assert follow["turns"] == 1 and follow["resolved"]["supported_accuracy"] == 1.0
    assert follow["alone"]["supported_accuracy"] == 0.0  # the typed "his" alone finds nothing
    assert follow["resolution_overlap"] > follow["typed_overlap"]
    assert report["per_turn"][1]["dependency"] == "pronoun"


def test_a_contraction_starting_the_question_is_no_part_of_the_name() -> None:
    """"What's Igor Kostyukov's regular job?" names Igor Kostyukov, not "What's Igor Kostyukov"."""
    talk = DELEGATION.add(Turn("What's his regular job?", "What's Igor Kostyukov’s regular job?",
                               _answer("What's Igor Kostyukov’s regular job?", "Kostyukov heads military "
                                       "intelligence.", "src/a1")))
    r = _ok("What did he say?", talk)
    assert r.standalone.startswith("What did Igor Kostyukov say")
