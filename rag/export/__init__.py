"""Export answers and their citations as Markdown, JSON, BibTeX, RIS or CSL-JSON.

Choices that shape the files:
- JSON: one answer gives exactly `Answer.to_dict()`; several give `{"answers": [...]}`.
- Reference formats (BibTeX, RIS, CSL-JSON) hold one entry per quoted span; the same span cited by
  several answers of a conversation is one entry. Abstained answers contribute no entries.
  Keys are `<slug of doc_id>-q<n>`, n counting the article's quotes in order of first appearance.
- BibTeX targets biblatex/biber. Text is LaTeX-escaped (`\\{`, `\\%`, `\\textbackslash{}`,
  `\\string^`, ...) and `--`, `''`, ... are split by `{}` so no ligature changes them; it decodes back
  exactly with bibtexparser's `LatexDecodingMiddleware`. `url` is verbatim, as biblatex reads it.
- BibTeX and RIS values are single lines: line breaks, with the spaces around them, become one space
  (RIS is line-based and LaTeX treats a line break as a space anyway). CSL-JSON keeps text as is.
- Markdown: questions, answers, titles and quotes are backslash-escaped so that links, HTML, emphasis,
  lists and headings in them render literally; file names are code spans; only http(s) URLs link.
- Only known metadata is written: no url means no access date; a date that is not ISO `YYYY-MM-DD`,
  `YYYY-MM` or `YYYY` goes verbatim into the note only.
- Archive text and model replies may hold terminal escape sequences and bidirectional overrides. JSON and
  CSL-JSON write them as `\\u` escapes (the same data); BibTeX, RIS and Markdown, read by people and by tools
  that print them, get inert escapes in their place (ESC becomes the text `\\x1b`). A RIS value that a
  spreadsheet would take for a formula (starting with `=`, `+`, `-` or `@`) is prefixed with `'`.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..answer.compose import CLOSEST_HEADING
from ..common.controls import has_unsafe, json_safe, visible
from ..errors import ExportError
from ..records import Answer
from .references import _authors, _Ref, _references, _slug, csl_items  # noqa: F401 - _slug: the key rule, tested


@dataclass(frozen=True)
class ExportFormat:
    """One export format: its name, file extension, label and media type, and whether it holds only references
    (then it is empty for an answer without citations)."""

    name: str
    extension: str
    label: str
    mime: str
    references: bool = False


EXPORTS: tuple[ExportFormat, ...] = (
    ExportFormat("markdown", ".md", "Markdown", "text/markdown"),
    ExportFormat("json", ".json", "JSON", "application/json"),
    ExportFormat("bibtex", ".bib", "BibTeX", "application/x-bibtex", references=True),
    ExportFormat("ris", ".ris", "RIS", "application/x-research-info-systems", references=True),
    ExportFormat("csl-json", ".csl.json", "CSL-JSON", "application/vnd.citationstyles.csl+json", references=True),
)
FORMATS: dict[str, str] = {f.name: f.extension for f in EXPORTS}
_ALIASES = {"md": "markdown", "bib": "bibtex", "csl": "csl-json", "csljson": "csl-json",
            "csl_json": "csl-json", "csl.json": "csl-json"}
# Longest first, so that ".csl.json" is tried before ".json".
_EXTENSIONS = ((".csl.json", "csl-json"), (".markdown", "markdown"), (".md", "markdown"),
               (".json", "json"), (".bib", "bibtex"), (".ris", "ris"))


def _known() -> str:
    return ", ".join(f"{name} ({ext})" for name, ext in FORMATS.items())


def _canonical(fmt: str) -> str:
    name = fmt.strip().lower().lstrip(".")
    name = _ALIASES.get(name, name)
    if name not in FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}; known formats: {_known()}.")
    return name


def format_for_path(path: str | Path, fmt: str | None = None) -> str:
    """The export format for `path`: `fmt` when given (aliases allowed), else from the file extension."""
    if fmt is not None:
        return _canonical(fmt)
    name = Path(path).name.lower()
    for ext, found in _EXTENSIONS:
        if name.endswith(ext) and len(name) > len(ext):
            return found
    raise ExportError(f"Cannot tell the export format of {str(path)!r} from its extension; "
                      f"use one of {_known()} or name the format explicitly.")


def _one_line(text: str) -> str:
    return visible(re.sub(r"\s*[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+\s*", " ", text).strip())


def _no_formula(value: str) -> str:
    """A RIS value a spreadsheet will not run: one starting like a formula gets a leading quote."""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


_LATEX = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "%": r"\%", "#": r"\#", "&": r"\&",
          "$": r"\$", "_": r"\_", "~": r"\textasciitilde{}",
          # `\textasciicircum` decodes to U+02C6; `\string^` prints and decodes to a plain caret.
          "^": r"\string^"}


def _latex(text: str) -> str:
    escaped = re.sub(r"[\\{}%#&$_~^]", lambda m: _LATEX[m.group()], _one_line(text))
    return re.sub(r"([-'`<>,])(?=\1)|[?!](?=`)", lambda m: m.group() + "{}", escaped)


def _bibtex(refs: list[_Ref], accessed: datetime.date) -> str:
    entries = []
    for ref in refs:
        url, publisher = ref.field("url"), ref.field("publisher")
        fields: list[tuple[str, str]] = []
        if ref.citation.title.strip():
            fields.append(("title", _latex(ref.citation.title)))
        if authors := _authors(ref.field("author")):
            names = (f"{f}, {g}" if g else f for f, g in authors)
            fields.append(("author", " and ".join(_latex(n) for n in names)))
        if publisher:
            fields.append(("organization" if url else "journaltitle", _latex(publisher)))
        if date := ref.date:
            fields.append(("date", "-".join(f"{p:02d}" for p in date)))
        if url:
            verbatim = re.sub(r"[{}\\\s\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]",
                              lambda m: quote(m.group(), errors="replace"), url)
            fields += [("url", verbatim), ("urldate", accessed.isoformat())]
        if category := ref.field("category"):
            fields.append(("keywords", _latex(category)))
        fields.append(("note", _latex(ref.note())))
        body = "".join(f"  {name} = {{{value}}},\n" for name, value in fields)
        entries.append(f"@{'online' if url else 'article'}{{{ref.key},\n{body}}}\n")
    return "\n".join(entries)


def _ris(refs: list[_Ref], accessed: datetime.date) -> str:
    records = []
    for ref in refs:
        url, publisher, date = ref.field("url"), ref.field("publisher"), ref.date
        lines = [("TY", "ELEC" if ref.web_only else "NEWS"), ("ID", ref.key),
                 ("TI", ref.citation.title)]
        lines += [("AU", f"{f}, {g}" if g else f) for f, g in _authors(ref.field("author"))]
        lines += [("T2", publisher), ("PB", publisher)]
        if date:
            padded = [f"{p:02d}" for p in date] + ["", ""]
            lines += [("PY", str(date[0])), ("DA", "/".join(padded[:3]) + "/")]
        if url:
            lines += [("UR", url), ("Y2", accessed.strftime("%Y/%m/%d/"))]
        lines += [("LA", ref.field("language")), ("KW", ref.field("category")), ("N1", ref.note())]
        text = "".join(f"{tag}  - {_no_formula(_one_line(value))}\n" for tag, value in lines if _one_line(value))
        records.append(text + "ER  - \n")
    return "\n".join(records)


def _csl(refs: list[_Ref], accessed: datetime.date) -> str:
    return json_safe(json.dumps(csl_items(refs, accessed), indent=2, ensure_ascii=False)) + "\n"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~&$])")


def _md_lines(text: str) -> list[str]:
    """`text` as Markdown lines that render literally: no links, HTML, emphasis, lists or headings."""
    lines = []
    for line in visible(text).strip().splitlines() or [""]:
        line = _MD_SPECIAL.sub(r"\\\1", line.strip())  # stripped: indentation would make code
        line = re.sub(r"^(\d+)([.)])", r"\1\\\2", re.sub(r"^([-=])", r"\\\1", line))
        lines.append(line)
    return lines


def _md(text: str) -> str:
    return " ".join(line for line in _md_lines(text) if line)


def _md_quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in _md_lines(text))


def _md_code(text: str) -> str:
    text = _one_line(text)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text[:1] == "`" or text[-1:] == "`" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_url(url: str) -> str:
    return f"<{url}>" if re.fullmatch(r"https?://[^\s<>`]+", url) and not has_unsafe(url) else _md_code(url)


def _md_source(title: str, source: str, start: int, end: int, metadata: Mapping[str, str]) -> str:
    parts = [_md(title) or "Untitled"]
    parts += [_md(str(metadata[k])) for k in ("publisher", "date") if str(metadata.get(k) or "").strip()]
    parts.append(f"{_md_code(source)}, characters {start}–{end}")
    if url := str(metadata.get("url") or "").strip():
        parts.append(_md_url(url))
    return " — ".join(parts)


def _markdown_answer(answer: Answer, heading: str) -> str:
    out = [f"## {heading}{_md(answer.question)}", ""]
    if answer.standalone and answer.standalone != answer.question:  # a follow-up, as it was answered
        out += [f"*Answering: {_md(answer.standalone)}*", ""]
    if answer.possible:
        out += ["*Not confirmed: the answer below is a possible one the assistant was not sure enough of to "
                "state; check its quote. Nothing is cited.*", ""]
    elif answer.abstained:
        out += ["*Abstained: the archive did not support an answer, so nothing is cited.*", ""]
    out += ["\n".join(_md_lines(answer.text)), ""]
    out += [f"*Notice: {_md(notice)}*\n" for notice in answer.notices]
    if answer.abstained:
        if answer.closest:
            out += [f"### {CLOSEST_HEADING}", ""]
        for c in answer.closest:
            src = _md_source(c.title, c.source, c.start, c.end, c.metadata)
            out += [f"**({c.n})** {src}, answer confidence {c.confidence or 0.0:.0%}", "", _md_quote(c.quote), ""]
        if answer.passages:
            out += ["### Closest passages (not citations)", ""]
        for i, hit in enumerate(answer.passages, 1):
            chunk = hit.chunk
            excerpt = chunk.text if len(chunk.text) <= 300 else chunk.text[:300].rstrip() + "…"
            src = _md_source(hit.title, hit.source, chunk.start, chunk.end, hit.metadata)
            out += [f"**Passage {i}.** {src}", "", _md_quote(excerpt), ""]
    elif answer.citations:
        out += ["### Sources", ""]
        for c in answer.citations:
            src = _md_source(c.title, c.source, c.start, c.end, c.metadata)
            out += [f"**\\[{c.n}\\]** {src}", "", _md_quote(c.quote), ""]
    else:
        out += ["*No citations.*", ""]
    return "\n".join(out)


def _markdown(answers: Sequence[Answer]) -> str:
    if len(answers) == 1:
        return _markdown_answer(answers[0], "")
    return "\n".join(_markdown_answer(a, f"{i}. ") for i, a in enumerate(answers, 1))


def _markdown_references(answers: Sequence[Answer], style: str, accessed: datetime.date | None = None) -> str:
    """A Markdown section of the cited articles as formatted references (empty when nothing is cited)."""
    from .styles import STYLES, references

    found = references(answers, style, accessed)
    if not found:
        return ""
    name = style if style.lower() in STYLES else Path(style).stem
    return "\n".join([f"\n## References ({_md(name)})", ""] + [f"- {_md(r.text)}" for r in found]) + "\n"


def _json(answers: Sequence[Answer]) -> str:
    data = answers[0].to_dict() if len(answers) == 1 else {"answers": [a.to_dict() for a in answers]}
    return json_safe(json.dumps(data, indent=2, ensure_ascii=False)) + "\n"


_REFERENCE_WRITERS: dict[str, Callable[[list[_Ref], datetime.date], str]] = {
    "bibtex": _bibtex, "ris": _ris, "csl-json": _csl}


def export_answers(answers: Sequence[Answer] | Answer, fmt: str,
                   accessed: datetime.date | None = None, style: str | None = None) -> str:
    """One answer or a whole conversation (answers in order) as text in `fmt`.

    `accessed` is the access date written next to known URLs (default: today). `style` (Markdown only: a
    citation style name or CSL file, `styles`) adds the cited articles as formatted references.
    """
    name = _canonical(fmt)
    items = [answers] if isinstance(answers, Answer) else list(answers)
    if not items:
        raise ExportError("There is nothing to export: ask a question first.")
    if name == "markdown":
        return _markdown(items) + (_markdown_references(items, style, accessed) if style else "")
    if name == "json":
        return _json(items)
    return _REFERENCE_WRITERS[name](_references(items), accessed or datetime.date.today())


def write_export(answers: Sequence[Answer] | Answer, path: str | Path, fmt: str | None = None,
                 accessed: datetime.date | None = None, style: str | None = None) -> str:
    """Write the export to `path` as UTF-8, atomically, and return the format used."""
    path = Path(path)
    name = format_for_path(path, fmt)
    data = export_answers(answers, name, accessed, style).encode("utf-8")
    if not path.parent.is_dir():
        raise ExportError(f"Cannot write {str(path)!r}: folder {str(path.parent)!r} does not exist.")
    tmp = None
    try:
        with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".tmp", delete=False) as handle:
            tmp = handle.name
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # Temporary files are private (0600); keep the mode of the file replaced, else rw-r--r--.
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.is_file() else 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise ExportError(f"Cannot write {str(path)!r}: {exc.strerror or exc}.") from exc
    return name
