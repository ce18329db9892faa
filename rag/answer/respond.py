"""The answer step: from a question and the passages retrieved for it to the `Answer`, with the reader when one
is in force (parts of a two-part question read apart, abstention, the closest sentences), with the first
stage alone when not, and through the checked language-model path when asked."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..common.text import content_terms
from ..errors import LLMUnavailable
from ..index.store import Snapshot
from ..records import Answer, Hit
from ..settings import AnswerSettings, LLMSettings
from .compose import (ABSTAIN_TEXT, POSSIBLE_FLOOR, UNSURE_TEXT, closest, closest_citations, compose, decide,
                      possible_answer, read)
from .first_stage import Candidate, score_sentences, select
from .question import parts, reading_questions
from .reader import Reader
from .speech import SpeakerPlan, by_speaker, speaker_first, speaker_of, statements_of, who_answer


@dataclass(frozen=True)
class Retrieved:
    """What retrieval found for a question: the generation it read, the question as cleaned, its vector, the
    passages shown (the first k) and every passage the reader may read (at least those)."""

    generation: Snapshot
    question: str
    vector: np.ndarray
    hits: list[Hit]
    wide: list[Hit]
    timings: dict[str, float] = field(default_factory=dict)
    began: float = field(default_factory=time.perf_counter)  # when the question arrived


def answer(retrieved: Retrieved, settings: AnswerSettings, llm: LLMSettings, reader: Reader | None,
           encode: Callable[[str], np.ndarray], mode: str | None = None, id: str | None = None,
           plan: SpeakerPlan | None = None) -> Answer:
    """The cited answer (or abstention) to `retrieved.question`; `encode` gives a question part its vector.
    `plan`: the question asks what a speaker of the archive said; their statements are quoted first."""
    began = time.perf_counter()
    gen, text, vector = retrieved.generation, retrieved.question, retrieved.vector
    hits = list(retrieved.hits)
    timings = dict(retrieved.timings)
    notices: list[str] = []
    readings: dict[str, float] = {}
    confidence = None
    nearest: list[Candidate] = []  # with the reader, when it abstains: the sentences closest to answering
    if reader is None:
        scored = score_sentences(gen, text, vector, hits)
        chosen = select(scored, settings.max_sentences, settings.abstain_threshold)
        abstained = not chosen or chosen[0].score < settings.abstain_threshold
        mine = by_speaker(scored, plan) if plan else None
        if mine is not None:
            chosen, abstained = [mine] + [c for c in chosen if c is not mine][:settings.max_sentences - 1], False
    else:
        wide = retrieved.wide
        scored = score_sentences(gen, text, vector, wide)
        questions = parts(text)
        judged = []
        for part, reading in zip(questions, reading_questions(questions)):
            candidates = scored if len(questions) == 1 else score_sentences(gen, reading, encode(reading), wide)
            if plan is not None:
                candidates = speaker_first(candidates, plan)
            judged.append((part, read(reader, reading, candidates, settings.read_sentences)))
        for _part, cands in judged:
            for c in cands:
                key = c.hit.chunk.chunk_id
                readings[key] = max(readings.get(key, 0.0), c.confidence or 0.0)
        decision = decide(judged, settings.reader_threshold, settings.max_sentences)
        chosen, abstained, confidence = list(decision.chosen), decision.abstained, decision.confidence
        mine = by_speaker(judged[0][1], plan) if plan is not None and len(judged) == 1 else None
        if mine is not None:  # what they said leads, trusted or not: the question asks for their words
            chosen = [mine] + [c for c in chosen if c is not mine][:settings.max_sentences - 1]
            abstained = False
        who = who_answer(gen, text, judged[0][1]) if abstained and len(judged) == 1 else None
        if who is not None:  # "Who described the plans as dead?": the statement that says so, with its speaker
            chosen, abstained = [who], False
        notices += [f"The archive does not answer this part of the question: “{p}”"
                    for p in decision.unanswered_parts]
        if abstained:
            nearest = closest(judged)
        shown = {h.chunk.chunk_id for h in hits}
        for c in chosen + nearest:  # a cited (or closest) sentence's passage beyond the first k is shown too
            if c.hit.chunk.chunk_id not in shown:
                shown.add(c.hit.chunk.chunk_id)
                hits.append(c.hit)
    timings["read_ms"] = (time.perf_counter() - began) * 1000
    possible = abstained and bool(nearest) and (nearest[0].confidence or 0.0) >= POSSIBLE_FLOOR
    if possible:
        answer_text, citations = possible_answer(nearest[0], settings.reader_threshold), []
    elif abstained:
        answer_text, citations = (UNSURE_TEXT if nearest else ABSTAIN_TEXT), []
    else:
        said, terms = statements_of(gen, chosen), set(content_terms(text))
        speakers = {i: (st.speaker, st.kind) for i, c in enumerate(chosen)
                    if (st := speaker_of(c, said, terms)) is not None and st.speaker}
        answer_text, citations = compose(chosen, gen, speakers)
    used_mode = "extractive"
    if (mode or settings.mode) == "llm" and not abstained:
        try:
            from .llm import ask_llm

            reply = ask_llm(text, hits, llm)
            notices += list(reply.notices)
            if reply.text:
                answer_text, citations, used_mode = reply.text, list(reply.citations), "llm"
            else:
                notices.append("The language model's answer had no supported sentence; "
                               "showing the extractive answer instead.")
        except LLMUnavailable as exc:
            notices.append(str(exc))
    timings["answer_ms"] = (time.perf_counter() - began) * 1000
    timings["total_ms"] = (time.perf_counter() - retrieved.began) * 1000
    return Answer(question=text, text=answer_text, abstained=abstained, citations=tuple(citations),
                  passages=tuple(hits), timings=timings, mode=used_mode, notices=tuple(notices), id=id,
                  evidence=scored[0].score if scored else None, confidence=confidence, readings=readings,
                  closest=tuple(closest_citations(nearest)), possible=possible)
