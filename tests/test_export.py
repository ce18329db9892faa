"""Exports parsed back with real parsers: bibtexparser 2, rispy, citeproc-py, json, markdown-it."""

from __future__ import annotations

import datetime
import json
from dataclasses import replace
from pathlib import Path

import bibtexparser
import pytest
import rispy
from bibtexparser.middlewares import LatexDecodingMiddleware
from citeproc import Citation as CslCitation
from citeproc import CitationItem, CitationStylesBibliography, CitationStylesStyle, formatter
from citeproc.source.json import CiteProcJSON

from rag.errors import ExportError
from rag.export import FORMATS, export_answers, format_for_path, write_export
from rag.records import Answer, Chunk, Citation, Hit

SEED = Path(__file__).resolve().parents[1] / "seeds" / "000_258bcc79047f2b9b.txt"
SOURCE = "seeds/000_258bcc79047f2b9b.txt"
ACCESSED = datetime.date(2026, 2, 1)
URL = "https://www.rt.com/russia/631552-kiev-losses/?utm_source=x&a=b%20c;d=1#frag"
HOSTILE = ('Weird {title" 100% \\ #1 & ~x^y $z_ \n<script>alert(1)</script> '
           "[a](javascript:alert(1))")
ARABIC = "مرحبا بالعالم"
CJK = "北京新闻 東京"
EMOJI = "Peace talks 🕊️🇺🇦"
META = {"publisher": "RT", "url": URL, "date": "2026-01-29", "author": "Vladimir Zelensky; Doe, Jane",
        "language": "en", "category": "Russia"}


@pytest.fixture(scope="module")
def text() -> str:
    return SEED.read_text(encoding="utf-8")


def cite(text: str, n: int, doc_id: str, first: str, last: str, *, title: str = "Kiev losses",
         metadata: dict[str, str] | None = None) -> Citation:
    """A citation of the real archive running from `first` to the end of `last`."""
    start = text.index(first)
    end = text.index(last, start) + len(last)
    return Citation(n=n, doc_id=doc_id, chunk_id=f"{doc_id}#{n}", title=title, source=SOURCE,
                    start=start, end=end, quote=text[start:end],
                    metadata=META if metadata is None else metadata)


def answer(question: str, *citations: Citation, abstained: bool = False,
           passages: tuple[Hit, ...] = ()) -> Answer:
    body = " ".join(f"Claim {c.n} [{c.n}]." for c in citations) or "I could not find an answer."
    return Answer(question=question, text=body, abstained=abstained, citations=citations,
                  passages=passages, timings={"total": 0.1234})


@pytest.fixture(scope="module")
def conversation(text: str) -> list[Answer]:
    """Two answers; the second quotes a paragraph break, a hostile title and non-Latin scripts."""
    first = answer(
        "How many soldiers did Kiev report killed?",
        cite(text, 1, "000_258bcc79047f2b9b-1", "In a France Info interview", "same period."),
        cite(text, 2, "000_258bcc79047f2b9b-1", "Strana.ua estimated", "military budget."),
    )
    second = answer(
        "What did Dmitriev say?",
        cite(text, 1, "Weird Doc/№1", "Russia and Ukraine conduct", "independent estimates",
             title=HOSTILE + " Москва " + ARABIC + " " + CJK + " " + EMOJI),
        cite(text, 2, "000_258bcc79047f2b9b-1", "Strana.ua estimated", "military budget."),
        cite(text, 3, "bare", "Dmitriev, the head of", "Thursday.", title="Bare", metadata={}),
        cite(text, 4, "webonly", "Ukrainian MP Sergey", "bubble of lies.”", title="Web page",
             metadata={"url": "https://example.org/page", "date": "sometime in winter"}),
    )
    return [first, second]


def expected_note(c: Citation, *questions: str, date: str | None = None) -> str:
    parts = [f"Quote: “{c.quote}”", f"Source: {c.source}, characters {c.start}–{c.end}",
             f"doc_id: {c.doc_id}", f"chunk_id: {c.chunk_id}"]
    parts += [f"Question: {q}" for q in questions]
    parts += [f"Date: {date}"] if date else []
    return " | ".join(parts)


def one_line(value: str) -> str:
    """What BibTeX and RIS keep of a value: line breaks and the spaces around them become one space."""
    return " ".join(part.strip() for part in value.splitlines() if part.strip())


def parse_bibtex(data: str) -> tuple[dict, dict]:
    """Entries by key: raw (as in the file) and LaTeX-decoded."""
    raw = bibtexparser.parse_string(data)
    decoded = bibtexparser.parse_string(data, append_middleware=[LatexDecodingMiddleware()])
    assert raw.failed_blocks == [] and decoded.failed_blocks == []
    return ({e.key: e for e in raw.entries}, {e.key: e for e in decoded.entries})


KEYS = ["000_258bcc79047f2b9b-1-q1", "000_258bcc79047f2b9b-1-q2", "weird-doc-no1-q1", "bare-q1",
        "webonly-q1"]

# --- format_for_path ------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "fmt"), [
    ("out.md", "markdown"), ("out.markdown", "markdown"), ("a/b/out.json", "json"),
    ("OUT.BIB", "bibtex"), ("refs.ris", "ris"), ("refs.csl.json", "csl-json"),
    (Path("x.v2.csl.json"), "csl-json"), ("x.csl.json.json", "json")])
def test_format_from_extension(path: str | Path, fmt: str) -> None:
    assert format_for_path(path) == fmt


@pytest.mark.parametrize(("given", "fmt"), [
    ("md", "markdown"), ("Markdown", "markdown"), ("bib", "bibtex"), ("BibTeX", "bibtex"),
    ("csl", "csl-json"), ("csl-json", "csl-json"), (".ris", "ris"), (" json ", "json")])
def test_explicit_format_wins(given: str, fmt: str) -> None:
    assert format_for_path("answers.md", given) == fmt


def test_unknown_extension_names_path_and_known_formats() -> None:
    with pytest.raises(ExportError) as err:
        format_for_path("notes/answers.docx")
    message = str(err.value)
    assert "notes/answers.docx" in message
    assert all(name in message and ext in message for name, ext in FORMATS.items())
    with pytest.raises(ExportError):
        format_for_path("README")
    with pytest.raises(ExportError):
        format_for_path(".bib")


def test_unknown_explicit_format_is_refused() -> None:
    with pytest.raises(ExportError, match="'endnote'.*markdown \\(\\.md\\)"):
        format_for_path("out.bib", "endnote")
    with pytest.raises(ExportError, match="'pdf'"):
        export_answers([], "pdf")


def test_formats_table() -> None:
    assert FORMATS == {"markdown": ".md", "json": ".json", "bibtex": ".bib", "ris": ".ris",
                       "csl-json": ".csl.json"}


# --- JSON -----------------------------------------------------------------------------------


def test_json_single_answer_is_to_dict(conversation: list[Answer]) -> None:
    data = export_answers(conversation[:1], "json")
    assert json.loads(data) == conversation[0].to_dict()
    assert export_answers(conversation[0], "json") == data


def test_json_conversation_wraps_answers(conversation: list[Answer]) -> None:
    data = export_answers(conversation, "json")
    assert json.loads(data) == {"answers": [a.to_dict() for a in conversation]}
    assert "Москва" in data and ARABIC in data and "🕊️" in data  # not \u-escaped
    assert data.startswith('{\n  "answers": [')


def test_nothing_to_export() -> None:
    with pytest.raises(ExportError, match="nothing to export"):
        export_answers([], "bibtex")


# --- BibTeX ---------------------------------------------------------------------------------


def test_bibtex_round_trips(conversation: list[Answer]) -> None:
    raw, decoded = parse_bibtex(export_answers(conversation, "bibtex", ACCESSED))
    assert list(raw) == KEYS
    first, strana = conversation[0].citations
    weird = conversation[1].citations[0]
    assert raw[KEYS[0]].entry_type == "online"
    assert decoded[KEYS[0]]["title"] == "Kiev losses"
    assert decoded[KEYS[0]]["note"] == expected_note(first, conversation[0].question)
    assert decoded[KEYS[0]]["author"] == "Zelensky, Vladimir and Doe, Jane"
    assert decoded[KEYS[0]]["organization"] == "RT"
    assert raw[KEYS[0]]["url"] == URL
    assert raw[KEYS[0]]["urldate"] == "2026-02-01"
    assert raw[KEYS[0]]["date"] == "2026-01-29"
    assert raw[KEYS[0]]["keywords"] == "Russia"
    # The span quoted by both answers is one entry that names both questions.
    assert decoded[KEYS[1]]["note"] == expected_note(strana, *(a.question for a in conversation))
    # Hostile title and a quote across a paragraph break: exact up to line breaks.
    assert decoded[KEYS[2]]["title"] == one_line(weird.title)
    assert decoded[KEYS[2]]["note"] == one_line(expected_note(weird, conversation[1].question))
    assert "\n\n" in weird.quote


def test_bibtex_missing_metadata_invents_nothing(conversation: list[Answer]) -> None:
    raw, decoded = parse_bibtex(export_answers(conversation, "bibtex", ACCESSED))
    bare, web = raw["bare-q1"], raw["webonly-q1"]
    assert bare.entry_type == "article"
    assert set(bare.fields_dict) == {"title", "note"}
    assert web.entry_type == "online"
    assert set(web.fields_dict) == {"title", "url", "urldate", "note"}
    assert decoded["webonly-q1"]["note"].endswith(" | Date: sometime in winter")


def test_bibtex_article_without_url_uses_journaltitle(text: str) -> None:
    meta = {"publisher": "Strana.ua & Co", "date": "2026-01", "author": "Reuters"}
    c = cite(text, 1, "x", "Strana.ua estimated", "budget.", metadata=meta)
    raw, decoded = parse_bibtex(export_answers([answer("q?", c)], "bibtex", ACCESSED))
    entry = raw["x-q1"]
    assert entry.entry_type == "article"
    assert decoded["x-q1"]["journaltitle"] == "Strana.ua & Co"
    assert entry["date"] == "2026-01"
    assert decoded["x-q1"]["author"] == "Reuters"
    assert "url" not in entry.fields_dict and "urldate" not in entry.fields_dict


TRICKY = ["{", "}", "}{", "\\", "\\}", "^", "~", "%", "#", "&", "$", "_", '"', "'", "a--b c---d",
          "``x''", "?` !`", "<<x>> ,,y", "@article{x, title = {y}}", "\n@misc{z,", "a  b", "Москва",
          ARABIC, CJK, EMOJI, "\\textbf{x} $x^2$", HOSTILE]


@pytest.mark.parametrize("value", TRICKY)
def test_hostile_values_round_trip_everywhere(text: str, value: str) -> None:
    c = cite(text, 1, "doc", "Strana.ua", "budget.", title=f"T {value} end", metadata={})
    c = Citation(**{**c.__dict__, "quote": f"Q {value} end"})
    answers = [answer("Why?", c)]
    raw, decoded = parse_bibtex(export_answers(answers, "bibtex"))
    assert list(raw) == ["doc-q1"]
    assert decoded["doc-q1"]["title"] == one_line(c.title)
    assert decoded["doc-q1"]["note"] == one_line(expected_note(c, "Why?"))
    (ris,) = rispy.loads(export_answers(answers, "ris"))
    assert ris["title"] == one_line(c.title)
    assert ris["notes"] == [one_line(expected_note(c, "Why?"))]
    (csl,) = json.loads(export_answers(answers, "csl-json"))
    assert csl["title"] == c.title and csl["note"] == expected_note(c, "Why?")


# --- RIS ------------------------------------------------------------------------------------


def test_ris_round_trips(conversation: list[Answer]) -> None:
    records = rispy.loads(export_answers(conversation, "ris", ACCESSED))
    assert [r["id"] for r in records] == KEYS
    first = conversation[0].citations[0]
    r = records[0]
    assert r["type_of_reference"] == "NEWS"
    assert r["title"] == "Kiev losses"
    assert r["authors"] == ["Zelensky, Vladimir", "Doe, Jane"]
    assert r["secondary_title"] == "RT" and r["publisher"] == "RT"
    assert r["year"] == "2026" and r["date"] == "2026/01/29/"
    assert r["access_date"] == "2026/02/01/"
    # rispy splits UR on ";" (its convention for several URLs); the text itself is unchanged.
    assert ";".join(r["urls"]) == URL
    assert r["language"] == "en" and r["keywords"] == ["Russia"]
    assert r["notes"] == [expected_note(first, conversation[0].question)]
    weird = conversation[1].citations[0]
    assert records[2]["title"] == one_line(weird.title)
    assert records[2]["notes"] == [one_line(expected_note(weird, conversation[1].question))]


def test_ris_missing_metadata_invents_nothing(conversation: list[Answer]) -> None:
    records = {r["id"]: r for r in rispy.loads(export_answers(conversation, "ris", ACCESSED))}
    assert set(records["bare-q1"]) == {"type_of_reference", "id", "title", "notes"}
    assert records["bare-q1"]["type_of_reference"] == "NEWS"
    web = records["webonly-q1"]
    assert web["type_of_reference"] == "ELEC"
    assert set(web) == {"type_of_reference", "id", "title", "urls", "access_date", "notes"}
    assert web["notes"][0].endswith(" | Date: sometime in winter")


# --- CSL-JSON -------------------------------------------------------------------------------


def test_csl_round_trips_and_renders(conversation: list[Answer]) -> None:
    data = export_answers(conversation, "csl-json", ACCESSED)
    items = json.loads(data)
    assert [i["id"] for i in items] == KEYS
    first = conversation[0].citations[0]
    assert items[0] == {
        "id": KEYS[0], "type": "article-newspaper", "title": "Kiev losses",
        "author": [{"family": "Zelensky", "given": "Vladimir"}, {"family": "Doe", "given": "Jane"}],
        "container-title": "RT", "publisher": "RT", "issued": {"date-parts": [[2026, 1, 29]]},
        "URL": URL, "accessed": {"date-parts": [[2026, 2, 1]]}, "language": "en",
        "note": expected_note(first, conversation[0].question)}
    weird = conversation[1].citations[0]
    assert items[2]["title"] == weird.title  # JSON keeps line breaks
    assert items[3] == {"id": "bare-q1", "type": "article-newspaper", "title": "Bare",
                        "note": expected_note(conversation[1].citations[2], conversation[1].question)}
    assert items[4]["type"] == "webpage" and "issued" not in items[4]

    source = CiteProcJSON(items)
    style = CitationStylesStyle("harvard-cite-them-right", validate=False)
    bibliography = CitationStylesBibliography(style, source, formatter.plain)
    for item in items:
        bibliography.register(CslCitation([CitationItem(item["id"])]))
    rendered = [str(entry) for entry in bibliography.bibliography()]
    assert len(rendered) == len(items)
    joined = "\n".join(rendered)
    assert "Zelensky, V. and Doe, J. (2026) “Kiev losses”, RT, 29 January." in joined
    assert f"Available at: {URL} (Accessed: February 1, 2026)." in joined
    assert weird.title in joined and "Москва" in joined and EMOJI in joined


# --- keys -----------------------------------------------------------------------------------


def test_keys_are_stable_and_unique(conversation: list[Answer], text: str) -> None:
    assert export_answers(conversation, "bibtex", ACCESSED) == export_answers(
        conversation, "bibtex", ACCESSED)
    # Colliding slugs are told apart the same way whatever the order of the answers.
    a = cite(text, 1, "Doc:1", "Strana.ua", "budget.")
    b = cite(text, 1, "doc-1", "Russia and Ukraine", "basis.")
    c = cite(text, 1, "Москва", "Dmitriev, the head", "Thursday.")
    forward = [i["id"] for i in json.loads(export_answers([answer("1", a), answer("2", b, c)], "csl"))]
    backward = [i["id"] for i in json.loads(export_answers([answer("2", b, c), answer("1", a)], "csl"))]
    assert forward == ["doc-1-q1", "doc-1-2-q1", forward[2]]
    assert backward == ["doc-1-2-q1", forward[2], "doc-1-q1"]
    assert forward[2].startswith("doc-") and forward[2].isascii() and forward[2].endswith("-q1")


def test_same_keys_in_every_reference_format(conversation: list[Answer]) -> None:
    bib, _ = parse_bibtex(export_answers(conversation, "bibtex"))
    ris = [r["id"] for r in rispy.loads(export_answers(conversation, "ris"))]
    csl = [i["id"] for i in json.loads(export_answers(conversation, "csl-json"))]
    assert list(bib) == ris == csl == KEYS


def test_abstained_answers_cite_nothing(conversation: list[Answer], text: str) -> None:
    hit = Hit(rank=1, chunk=Chunk("bare#1", "bare", 0, 25, text[:25]), title="Bare", source=SOURCE,
              score=0.3)
    stray = conversation[0].citations[0]
    abstained = answer("Who won?", stray, abstained=True, passages=(hit,))
    assert export_answers([abstained], "bibtex") == ""
    assert rispy.loads(export_answers([abstained], "ris")) == []
    assert json.loads(export_answers([abstained], "csl-json")) == []
    md = export_answers([abstained], "markdown")
    assert "Abstained" in md and "### Sources" not in md and stray.quote not in md
    assert "### Closest passages (not citations)" in md and "> Category Archive : Russia" in md


def test_the_closest_sentences_of_an_abstention_are_listed_but_never_exported_as_references(
        conversation: list[Answer]) -> None:
    near = replace(conversation[0].citations[0], confidence=0.31)
    abstained = replace(answer("How many were killed in March?", abstained=True), closest=(near,))
    for fmt in ("bibtex", "ris", "csl-json"):
        assert export_answers([abstained], fmt) in ("", "[]", "[]\n")
    md = export_answers([abstained], "markdown")
    assert "### Closest sentences (not citations: none answers clearly enough)" in md
    assert "**(1)** " in md and "answer confidence 31%" in md and "### Sources" not in md
    assert md.index("### Closest sentences") < md.index("> In a France Info interview")
    assert json.loads(export_answers([abstained], "json"))["closest"][0]["quote"] == near.quote


# --- Markdown -------------------------------------------------------------------------------


def test_markdown_conversation(conversation: list[Answer]) -> None:
    md = export_answers(conversation, "markdown")
    assert md.index("## 1. How many soldiers") < md.index("## 2. What did Dmitriev say?")
    first = conversation[0].citations[0]
    assert "Claim 1 \\[1\\]." in md
    assert (f"**\\[1\\]** Kiev losses — RT — 2026-01-29 — `{SOURCE}`, characters "
            f"{first.start}–{first.end} — <{URL}>") in md
    assert f"\n> {first.quote}\n" in md
    assert "\n> Russia and Ukraine conduct" in md and "\n>\n> Zelensky acknowledged" in md
    assert "**\\[3\\]** Bare — `" in md


def test_markdown_renders_hostile_text_literally(conversation: list[Answer]) -> None:
    markdown_it = pytest.importorskip("markdown_it")
    hostile = Citation(1, "h", "h#1", HOSTILE, "a_b*c.txt", 0, 10, "# Head\n- item\n1. x\n" + HOSTILE,
                       {"url": "javascript:alert(1)"})
    md = export_answers([answer("Is [x](http://evil) <b>bold</b> *ok*?", hostile)], "markdown")
    html = markdown_it.MarkdownIt("commonmark").render(md)
    assert "<a " not in html and "<script" not in html and "<b>" not in html
    assert "<em>" not in html and "<li>" not in html and "<h1>" not in html
    assert "[a](javascript:alert(1))" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<code>javascript:alert(1)</code>" in html and "<code>a_b*c.txt</code>" in html
    assert "# Head" in html and "- item" in html and "1. x" in html


# --- write_export ---------------------------------------------------------------------------


def test_write_export(conversation: list[Answer], tmp_path: Path) -> None:
    target = tmp_path / "refs.csl.json"
    assert write_export(conversation, target, accessed=ACCESSED) == "csl-json"
    assert target.read_bytes().decode("utf-8") == export_answers(conversation, "csl", ACCESSED)
    assert write_export(conversation, str(target), fmt="bib") == "bibtex"  # explicit fmt wins
    assert target.read_text(encoding="utf-8").startswith("@online{")
    assert [p.name for p in tmp_path.iterdir()] == ["refs.csl.json"]  # no temp file left
    assert target.stat().st_mode & 0o777 == 0o644


def test_write_export_errors(conversation: list[Answer], tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        write_export(conversation, tmp_path / "missing" / "a.md")
    with pytest.raises(ExportError, match="a.txt"):
        write_export(conversation, tmp_path / "a.txt")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("raw", "parts"), [
    ("2026-01-29", [2026, 1, 29]), ("2026-01", [2026, 1]), ("2026", [2026]),
    ("2026-01-29T10:15:00Z", [2026, 1, 29]), ("2026-02-30", None), ("2026-13", None),
    ("29 January 2026", None), ("26", None)])
def test_dates_are_parsed_or_kept_in_the_note(text: str, raw: str, parts: list[int] | None) -> None:
    c = cite(text, 1, "d", "Strana.ua", "budget.", metadata={"date": raw})
    (item,) = json.loads(export_answers([answer("When?", c)], "csl-json"))
    if parts is None:
        assert "issued" not in item and item["note"].endswith(f" | Date: {raw}")
    else:
        assert item["issued"] == {"date-parts": [parts]} and "Date:" not in item["note"]


def test_bibtex_url_is_verbatim_with_unsafe_characters_percent_encoded(text: str) -> None:
    url = "https://example.org/a b{c}\\d?q=%41&x=#y"
    c = cite(text, 1, "d", "Strana.ua", "budget.", metadata={"url": url, "publisher": "P"})
    raw, _ = parse_bibtex(export_answers([answer("Where?", c)], "bibtex", ACCESSED))
    assert raw["d-q1"]["url"] == "https://example.org/a%20b%7Bc%7D%5Cd?q=%41&x=#y"
    assert json.loads(export_answers([answer("Where?", c)], "csl"))[0]["URL"] == url
