"""Sentence spans: exact offsets, never across a line, Markdown heading marks left out of the quote."""

from __future__ import annotations

from rag.ingest.sentences import sentence_spans


def texts(text: str, start: int = 0, end: int | None = None) -> list[str]:
    spans = sentence_spans(text, start, end)
    assert all(text[s:e] == text[s:e].strip() and "\n" not in text[s:e] for s, e in spans)
    return [text[s:e] for s, e in spans]


def test_sentences_are_exact_slices_that_keep_their_characters() -> None:
    text = "“We will not allow it,” he said.\xa0Talks resume on Monday.\r\n\r\nA second paragraph. Dr. Smith agreed."
    assert texts(text) == ["“We will not allow it,” he said.", "Talks resume on Monday.", "A second paragraph.",
                           "Dr. Smith agreed."]


def test_heading_marks_are_not_part_of_a_quote() -> None:
    text = "# Volcano erupts on an island\n\n## Evacuation\nTwo villages left. Ash fell.\n  ### Deep  heading  "
    assert texts(text) == ["Volcano erupts on an island", "Evacuation", "Two villages left.", "Ash fell.",
                           "Deep  heading"]
    assert texts("#hashtag is text. Yes.") == ["#hashtag is text.", "Yes."]


def test_a_window_of_the_text_gives_offsets_into_the_whole_text() -> None:
    text = "Intro line.\nFirst one. Second one.\nOutro."
    start = text.index("First")
    spans = sentence_spans(text, start, text.index("\nOutro"))
    assert [(s, text[s:e]) for s, e in spans] == [(start, "First one."), (text.index("Second"), "Second one.")]
