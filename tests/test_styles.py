"""Cited articles rendered as references in APA, Chicago author-date, MLA and Harvard (or a CSL file), offline,
in `rag ask --style`, the Markdown export and the library; a missing date or author never reads "None"."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rag
from rag.cli import app
from rag.records import Answer, Citation

ACCESSED = datetime.date(2026, 12, 7)


def answer(**metadata: str) -> Answer:
    quote = "The regional council approved the new river dam on Thursday by 31 votes to 9."
    citation = Citation(1, "https://news.example/dam", "https://news.example/dam#0", "Dam project approved",
                        "news.warc.gz", 45, 45 + len(quote), quote, metadata)
    return Answer("Who approved the dam?", f"“{quote}” [1]", False, (citation,), ())


FULL = answer(author="Marta Lindqvist", date="2026-03-03", publisher="Coastal Courier",
              url="https://courier.example/dam")


@pytest.mark.parametrize("style, expected", [
    ("apa", "Lindqvist, M. (2026, March 3). Dam project approved. Coastal Courier. https://courier.example/dam"),
    ("chicago-author-date", "Lindqvist, M. 2026. “Dam Project Approved”. Coastal Courier, March 3. "
                            "https://courier.example/dam."),
    ("mla", "Lindqvist, M. “Dam Project Approved”. Coastal Courier, 3 Mar. 2026, https://courier.example/dam."),
    ("harvard", "Lindqvist, M. (2026) “Dam project approved”, Coastal Courier, 3 March. Available at: "
                "https://courier.example/dam (Accessed: December 7, 2026)."),
])
def test_each_style_renders_the_expected_reference(style: str, expected: str) -> None:
    assert rag.format_references(FULL, style, ACCESSED) == [rag.Reference("https://news.example/dam", expected)]


def test_missing_author_and_date_render_as_the_style_says() -> None:
    bare = answer(publisher="Coastal Courier")
    apa = rag.format_references(bare, "apa", ACCESSED)[0].text
    assert apa == "Dam project approved. (n.d.). Coastal Courier."
    for style in rag.CITATION_STYLES:
        text = rag.format_references(bare, style, ACCESSED)[0].text
        assert "None" not in text and "Dam" in text


def test_a_csl_file_and_bad_styles(tmp_path: Path) -> None:
    csl = tmp_path / "house.csl"
    csl.write_bytes(rag.style_file("apa").read_bytes())
    assert rag.format_references(FULL, str(csl), ACCESSED)[0].text.startswith("Lindqvist, M. (2026, March 3).")
    with pytest.raises(rag.ExportError, match="Unknown citation style 'vancouverish': use apa, "):
        rag.format_references(FULL, "vancouverish")
    broken = tmp_path / "broken.csl"
    broken.write_text("<style>not csl")
    with pytest.raises(rag.ExportError, match="cannot be read"):
        rag.format_references(FULL, str(broken))


def test_markdown_export_carries_the_references() -> None:
    text = rag.export_answers(FULL, "markdown", ACCESSED, style="mla")
    assert text.endswith("\n## References (mla)\n\n- Lindqvist, M. “Dam Project Approved”. Coastal Courier, "
                         "3 Mar. 2026, https://courier.example/dam.\n")
    assert "## References" not in rag.export_answers(FULL, "markdown", ACCESSED)
    abstained = Answer("Who?", "The archive does not say.", True, (), ())
    assert "## References" not in rag.export_answers(abstained, "markdown", style="apa")


@pytest.mark.slow
def test_ask_with_a_style_prints_references_and_exports_them(bundled_folder: rag.Settings, tmp_path: Path) -> None:
    runner = CliRunner()
    where = ["--corpus", str(bundled_folder.paths.corpus), "--index", str(bundled_folder.paths.index)]
    question = "Where was the aviation show held?"
    result = runner.invoke(app, ["ask", question, "--style", "apa", *where])
    assert result.exit_code == 0, result.output
    assert "References (apa):" in result.output and "None" not in result.output.split("References (apa):")[1]
    out = tmp_path / "answer.md"
    result = runner.invoke(app, ["ask", question, "--style", "chicago-author-date", "--json", "--export", str(out),
                                 *where])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout.splitlines()[0])
    assert data["references"] and all(isinstance(r, str) and r for r in data["references"])
    assert "## References (chicago-author-date)" in out.read_text()
    result = runner.invoke(app, ["ask", question, "--style", "nope", *where])
    assert result.exit_code != 0 and "Unknown citation style 'nope'" in result.output
