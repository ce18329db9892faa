"""`rag corpus list` and `rag index build | info | verify`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

import rag

from .base import (CorpusOpt, IndexOpt, JsonOpt, _echo, _errors, _print_json, _progress_bar, _reader_line, _settings,
                   _warn, corpus_app, index_app)


@corpus_app.command("list")
def corpus_list(corpus: Optional[Path] = CorpusOpt, index: Optional[Path] = IndexOpt,
                as_json: bool = JsonOpt) -> None:
    """One line per article of the corpus (the index folder, if inside it, is not read)."""
    with _errors():
        settings = _settings(corpus, index)
        count = 0
        for article in rag.read_corpus(settings, _warn):
            d = article.document
            count += 1
            if as_json:
                _print_json({"doc_id": d.doc_id, "title": d.title, "source": d.source, "start": d.start,
                             "end": d.end, "chars": d.chars})
            else:
                _echo(f"{d.doc_id}\t{d.source}:{d.start}-{d.end}\t{d.title}")
        if count == 0:
            raise rag.no_articles(settings.paths.corpus)


@index_app.command("build")
def index_build(corpus: Optional[Path] = CorpusOpt, index: Optional[Path] = IndexOpt,
                full: bool = typer.Option(False, "--full", help="Re-embed everything."),
                as_json: bool = JsonOpt) -> None:
    """Build or update the index; only new and changed articles are embedded."""
    with _errors():
        settings = _settings(corpus, index)
        progress, stop = _progress_bar(not as_json and sys.stderr.isatty())
        try:
            report = rag.build_index(settings, full=full, progress=progress, warn=_warn)
        finally:
            stop()
        if as_json:
            _print_json(report.to_dict())
            return
        if report.full and report.full_reason not in ("no previous index", None):
            _echo(f"Full rebuild: {report.full_reason}.")
        _echo(f"Indexed {report.documents} articles in {report.chunks} chunks ({report.seconds:.1f}s): "
              f"{report.added} added, {report.changed} changed, {report.removed} removed, "
              f"{report.unchanged} unchanged; {report.chunks_embedded} chunks embedded, "
              f"{report.chunks_reused} reused.")
        _echo(f"Live index: {report.index}")


@index_app.command("info")
def index_info(index: Optional[Path] = IndexOpt, corpus: Optional[Path] = CorpusOpt,
               as_json: bool = JsonOpt) -> None:
    """What the live index holds."""
    with _errors():
        settings = _settings(corpus, index)
        info = rag.index_info(settings)
        status = rag.index_status(settings)
        info["corpus_changed"] = status.corpus_changed
        info["reader"] = rag.reader_info(settings)
        if as_json:
            _print_json(info)
            return
        counts = info["counts"]
        store = info.get("store")
        _echo(f"Index:      {info['where']} ({info['generation']})")
        _echo(f"Built:      {info.get('built_at', '?')} by rag {info.get('package_version', '?')}")
        _echo(f"Model:      {info['model']} (dimension {info['dimension']}, max {info.get('max_seq_length', '?')} "
              "tokens)")
        _echo(f"Encoder:    backend {info.get('backend', 'torch')}; sentence vectors "
              f"{info.get('sentence_vectors', 'encoded')}")
        _echo(f"Contents:   {counts['documents']} articles, {counts['chunks']} chunks, "
              f"{counts['sentences']} sentences, from {info['sources']} files")
        _echo(f"Statements: {counts.get('statements', 0)} attributed statements by {counts.get('speakers', 0)} "
              "speakers (rag quotes)")
        _echo(f"Store:      {store.get('backend', 'folder')}, vectors {store.get('type', '?')}; "
              f"chunking {info.get('chunking', '?')}")
        _echo(_reader_line(info["reader"]).replace("Reader: ", "Reader:     ", 1))
        changed = status.corpus_changed
        _echo("Corpus:     " + (f"{len(changed)} files changed since the build; run: rag index build"
                                if changed else "unchanged since the build"))
        if info["problem"]:
            _echo(f"Problem:    {info['problem']}")
            raise typer.Exit(1)


@index_app.command("verify")
def index_verify(index: Optional[Path] = IndexOpt, corpus: Optional[Path] = CorpusOpt,
                 as_json: bool = JsonOpt) -> None:
    """Check that manifest, files, checksums, dimensions, counts and model agree."""
    with _errors():
        result = rag.verify_index(_settings(corpus, index))
        if as_json:
            _print_json(result)
        else:
            _echo(f"OK: {result['generation']}: {result['documents']} articles, {result['chunks']} chunks, "
                       f"dimension {result['dimension']}; {result['checked']}.")
