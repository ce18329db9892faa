"""`rag search`, `rag ask` (one question, or a batch of questions and dialogues) and `rag quotes`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import typer

import rag

from ..common.dates import normalise_date
from .base import (BatchOpt, CorpusOpt, DocOpt, IndexOpt, JsonOpt, KOpt, SinceOpt, UntilOpt, _echo, _errors, _filters,
                   _open_engine, _print_answer, _print_json, app)
from .chat import answer_dialogue, dialogue_turns


def _batch_lines(path: str) -> Iterator[tuple[Optional[str], Any]]:
    """(id, question) per line of the batch; a line that is not UTF-8 gives (None, BadQuestion) and the
    batch goes on."""
    name = "standard input" if path == "-" else f"batch file {path}"
    try:
        handle = sys.stdin.buffer if path == "-" else open(path, "rb")
    except OSError as exc:
        raise rag.BadQuestion(f"Cannot read {name}: {exc.strerror or exc}. Give a file of questions, one per "
                              "line or JSON {id, question}, or - for stdin.") from None
    try:
        for lineno, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield None, rag.BadQuestion(f"Line {lineno} of the {name} is not UTF-8 text (byte {exc.start + 1}). "
                                            "Re-save the file as UTF-8.")
                continue
            yield from _parse_batch([line.lstrip("\ufeff") if lineno == 1 else line])
    except OSError as exc:
        raise rag.BadQuestion(f"Cannot read {name}: {exc.strerror or exc}.") from None
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()


def _parse_batch(handle: Any) -> Iterator[tuple[Optional[str], Any]]:
    for line in handle:
        if not line.strip():
            continue
        stripped = line.strip()
        if stripped.startswith("{"):
            try:
                obj = json.loads(stripped)
            except (json.JSONDecodeError, RecursionError):
                yield None, stripped
                continue
            qid = str(obj["id"]) if isinstance(obj, dict) and obj.get("id") is not None else None
            # a dialogue line {"id", "turns": [...]} is passed whole, for `rag ask` to answer turn by turn
            yield qid, (obj if isinstance(obj, dict) and "turns" in obj else
                        obj.get("question", "") if isinstance(obj, dict) else stripped)
        else:
            yield None, stripped


def _run_batch(batch: str, one: Callable[[str, Optional[str]], dict[str, Any]]) -> None:
    for qid, question in _batch_lines(batch):
        try:
            if isinstance(question, rag.RagError):
                raise question
            result = one(question, qid)
        except rag.RagError as exc:
            shown = None if isinstance(question, (rag.RagError, dict)) else question
            result = ({"id": qid} if qid is not None else {}) | {"question": shown, "error": str(exc)}
        _print_json(result)
        sys.stdout.flush()


@app.command("search")
def search_cmd(query: Optional[str] = typer.Argument(None), k: Optional[int] = KOpt,
               index: Optional[Path] = IndexOpt, corpus: Optional[Path] = CorpusOpt,
               doc: Optional[List[str]] = DocOpt, since: Optional[str] = SinceOpt, until: Optional[str] = UntilOpt,
               batch: Optional[str] = BatchOpt, as_json: bool = JsonOpt) -> None:
    """The passages that best match a query."""
    import time

    with _errors():
        engine = _open_engine(corpus, index)

        def one(q: str, qid: Optional[str]) -> dict[str, Any]:
            if isinstance(q, dict):
                raise rag.BadQuestion("Dialogue lines (with \"turns\") are answered by rag ask --batch, not search.")
            t0 = time.perf_counter()
            hits = engine.search(q, k, **_filters(doc, since, until))
            data = {"id": qid} if qid is not None else {}
            return data | {"question": q, "passages": [h.to_dict() | {"date": normalise_date(h.metadata.get("date"))}
                                                        for h in hits],
                           "timings": {"total_ms": round((time.perf_counter() - t0) * 1000, 3)}}

        if batch:
            _run_batch(batch, one)
            return
        if query is None:
            raise rag.BadQuestion("Give a query, e.g. rag search \"nuclear treaty\", or --batch FILE.")
        result = one(query, None)
        if as_json:
            _print_json(result)
            return
        for p in result["passages"]:
            _echo(f"[{p['rank']}] {p['score']:.3f}  {p['title']}  ({p['source']}:{p['start']}-{p['end']})")
            _echo("    " + " ".join(p["text"][:1000].split())[:400])
        if not result["passages"]:
            _echo("No passage matches.")


@app.command("ask")
def ask_cmd(question: Optional[str] = typer.Argument(None), k: Optional[int] = KOpt,
            index: Optional[Path] = IndexOpt, corpus: Optional[Path] = CorpusOpt,
            doc: Optional[List[str]] = DocOpt, since: Optional[str] = SinceOpt, until: Optional[str] = UntilOpt,
            llm: bool = typer.Option(False, "--llm", help="Answer with the configured language model."),
            batch: Optional[str] = BatchOpt, as_json: bool = JsonOpt,
            export: Optional[Path] = typer.Option(None, "--export", help="Write the citations to FILE "
                                                  "(.md, .json, .bib, .ris, .csl.json)."),
            fmt: Optional[str] = typer.Option(None, "--format", help="Export format when the extension is not "
                                              "enough: markdown, json, bibtex, ris, csl-json."),
            style: Optional[str] = typer.Option(None, "--style", help="Show each cited article as a reference in "
                                                "this style (also in a Markdown export): apa, "
                                                "chicago-author-date, mla, harvard, or a .csl file.")) -> None:
    """A cited answer from the archive, or a plain statement that it has none."""
    with _errors():
        if style is not None:
            rag.style_file(style)  # refuse an unknown style before any work
        engine = _open_engine(corpus, index)
        mode = "llm" if llm else None
        if export is not None:
            rag.format_for_path(export, fmt)  # refuse a bad format before any work
        answers: list[rag.Answer] = []

        def styled(answer: rag.Answer) -> dict[str, Any]:
            data = answer.to_dict()
            if style is not None:
                data["references"] = [r.text for r in rag.format_references(answer, style)]
            return data

        def one(q: str, qid: Optional[str]) -> dict[str, Any]:
            if isinstance(q, dict):
                return _dialogue(engine, q, qid, answers, k=k, mode=mode, **_filters(doc, since, until))
            answer = engine.ask(q, k, mode=mode, id=qid, **_filters(doc, since, until))
            answers.append(answer)
            return styled(answer)

        if batch:
            _run_batch(batch, one)
        else:
            if question is None:
                raise rag.BadQuestion("Give a question, e.g. rag ask \"Who signed the treaty?\", or --batch FILE.")
            answer = engine.ask(question, k, mode=mode, **_filters(doc, since, until))
            answers.append(answer)
            if as_json:
                _print_json(styled(answer))
            else:
                _print_answer(answer)
                references = rag.format_references(answer, style) if style is not None else []
                if references:
                    _echo(f"\nReferences ({style}):")
                    for r in references:
                        _echo(f"- {r.text}")
        if export is not None:
            used = rag.write_export(answers, export, fmt, style=style)
            _echo(f"Exported {len(answers)} answer(s) as {used} to {export}", err=True)


@app.command("quotes")
def quotes_cmd(speaker: Optional[str] = typer.Option(None, "--speaker", help="Only this speaker's statements "
                                                     "(\"Lavrov\" finds Sergey Lavrov's)."),
               doc: Optional[List[str]] = DocOpt, since: Optional[str] = SinceOpt, until: Optional[str] = UntilOpt,
               speakers: bool = typer.Option(False, "--speakers", help="List the speakers instead, with their "
                                             "numbers of statements and articles."),
               index: Optional[Path] = IndexOpt, corpus: Optional[Path] = CorpusOpt, as_json: bool = JsonOpt) -> None:
    """Who said what: the attributed statements of the archive, in date order (--json: one a line)."""
    with _errors():
        engine = _open_engine(corpus, index)
        if speakers:
            for sp in engine.speakers(doc or None, since, until):
                if as_json:
                    _print_json(sp.to_dict())
                else:
                    _echo(f"{sp.name}: {sp.statements} statements in {sp.articles} articles")
            return
        for st in engine.statements(speaker, doc or None, since, until):
            if as_json:
                _print_json(st.to_dict())
                continue
            date = st.metadata.get("date")
            _echo(f"{st.speaker or '(no speaker)'} [{st.kind}] “{st.text}”")
            _echo(f"    {st.title}" + (f" ({date})" if date else "") + f" — {st.source} {st.start}-{st.end}")


def _dialogue(engine: rag.Engine, line: dict, qid: Optional[str], answers: list, **ask: Any) -> dict[str, Any]:
    """One dialogue line of a batch: {"id", "turns": [answer JSON with "standalone", ...]}."""
    conversation, rows = answer_dialogue(engine, dialogue_turns(line), **ask)
    answers += conversation.answers
    return ({"id": qid} if qid is not None else {}) | {"turns": rows}
