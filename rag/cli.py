"""The `rag` command: a thin layer over the public API. Library errors become one-line messages."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import typer

import rag
from rag.controls import json_safe, visible
from rag.secrets import mask_secrets

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Cited question answering over a news archive.")
corpus_app = typer.Typer(no_args_is_help=True, help="Look at the corpus.")
index_app = typer.Typer(no_args_is_help=True, help="Build and check the index.")
reader_app = typer.Typer(no_args_is_help=True, help="The answer reader: train it, see what it is.")
app.add_typer(corpus_app, name="corpus")
app.add_typer(index_app, name="index")
app.add_typer(reader_app, name="reader")

CorpusOpt = typer.Option(None, "--corpus", help="Corpus folder (default: settings, then seeds/).")
IndexOpt = typer.Option(None, "--index", help="Index folder (default: settings, then index/).")
JsonOpt = typer.Option(False, "--json", help="Machine-readable output.")


def _echo(text: str = "", err: bool = False) -> None:
    """Human-readable output: archive text, file names and model replies may hold terminal escape sequences,
    which are printed as inert escapes."""
    typer.echo(visible(text), err=err)


def _err(message: str) -> None:
    _echo(f"error: {mask_secrets(message)}", err=True)


def _warn(message: str) -> None:
    _echo(f"warning: {mask_secrets(message)}", err=True)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn the library's errors into one line on stderr and exit status 1."""
    try:
        yield
    except rag.RagError as exc:
        _err(str(exc))
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        _err("interrupted; the live index is unchanged.")
        raise typer.Exit(130) from None
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as other commands do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
    except OSError as exc:  # a folder that cannot be written, a full disk: the live index is never touched
        where = f" ({exc.filename})" if exc.filename else ""
        _err(f"{exc.strerror or exc}{where}. Check the path and its permissions or free space; "
             "the live index is unchanged.")
        raise typer.Exit(1) from None


def _settings(corpus: Optional[Path], index: Optional[Path], **sections: dict[str, Any]) -> rag.Settings:
    return rag.load_settings(**sections).with_paths(corpus, index)


def _print_json(data: Any) -> None:
    typer.echo(json_safe(json.dumps(data, ensure_ascii=False)))


@corpus_app.command("list")
def corpus_list(corpus: Optional[Path] = CorpusOpt, index: Optional[Path] = IndexOpt,
                as_json: bool = JsonOpt) -> None:
    """One line per article of the corpus (the index folder, if inside it, is not read)."""
    with _errors():
        settings = _settings(corpus, index)
        count = 0
        for article in rag.iter_articles(settings.paths.corpus, _warn, settings.chunking.min_title_words,
                                         options=settings.corpus, exclude=[settings.paths.index]):
            d = article.document
            count += 1
            if as_json:
                _print_json({"doc_id": d.doc_id, "title": d.title, "source": d.source, "start": d.start,
                             "end": d.end, "chars": d.chars})
            else:
                _echo(f"{d.doc_id}\t{d.source}:{d.start}-{d.end}\t{d.title}")
        if count == 0:
            raise rag.CorpusEmpty(f"Corpus folder {settings.paths.corpus} holds no articles. "
                                  "Add .txt, .md, .jsonl or .html files to it.")


def _progress_bar(enabled: bool) -> tuple[Callable[[str, int, int], None] | None, Callable[[], None]]:
    if not enabled:
        return None, lambda: None
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                   transient=True)
    tasks: dict[str, Any] = {}
    bar.start()

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            label = {"documents": "Reading and embedding files", "vectors": "Writing vector and BM25 indexes",
                     "encoder": "Deriving the ONNX encoder from the model (once)"}
            tasks[stage] = bar.add_task(label.get(stage, stage), total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return update, bar.stop


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
            yield (str(obj["id"]) if obj.get("id") is not None else None), obj.get("question", "")
        else:
            yield None, stripped


def _open_engine(corpus: Optional[Path], index: Optional[Path]) -> rag.Engine:
    """The engine over the live index, with a warning when the corpus moved on since the build."""
    settings = _settings(corpus, index)
    engine = rag.get_engine(settings)
    changed = rag.index_status(settings).corpus_changed
    if changed:
        _warn(f"the corpus changed since the index was built ({len(changed)} file(s), e.g. {changed[0]}); "
              "answers come from the index as built. Update it with: rag index build")
    return engine


def _filters(doc: Optional[List[str]], since: Optional[str], until: Optional[str]) -> dict[str, Any]:
    return {"doc_ids": doc or None, "since": since, "until": until}


DocOpt = typer.Option(None, "--doc", help="Only this article (repeatable).")
SinceOpt = typer.Option(None, "--since", help="Only articles dated on or after (YYYY[-MM[-DD]]).")
UntilOpt = typer.Option(None, "--until", help="Only articles dated on or before (YYYY[-MM[-DD]]).")
BatchOpt = typer.Option(None, "--batch", help="File of questions, one per line or JSON {id, question}; - for stdin.")
KOpt = typer.Option(None, "-k", help="Passages to return.")


def _run_batch(batch: str, one: Callable[[str, Optional[str]], dict[str, Any]]) -> None:
    for qid, question in _batch_lines(batch):
        try:
            if isinstance(question, rag.RagError):
                raise question
            result = one(question, qid)
        except rag.RagError as exc:
            shown = None if isinstance(question, rag.RagError) else question
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
            t0 = time.perf_counter()
            hits = engine.search(q, k, **_filters(doc, since, until))
            data = {"id": qid} if qid is not None else {}
            return data | {"question": q, "passages": [h.to_dict() for h in hits],
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


def _print_answer(answer: rag.Answer) -> None:
    _echo(answer.text)
    for notice in answer.notices:
        _echo(f"note: {notice}", err=True)
    if answer.citations:
        _echo("\nSources:")
        for c in answer.citations:
            meta = ", ".join(f"{k}: {v}" for k, v in c.metadata.items() if k in ("publisher", "date", "url"))
            _echo(f"[{c.n}] {c.title} ({c.source}:{c.start}-{c.end}{'; ' + meta if meta else ''})")
            _echo(f"    “{c.quote}”")
    if answer.closest:
        _echo(f"\n{rag.CLOSEST_HEADING}:")
        for c in answer.closest:
            _echo(f"({c.n}) {c.title} ({c.source}:{c.start}-{c.end}) answer confidence {c.confidence or 0.0:.0%}")
            _echo(f"    “{c.quote}”")
    if not answer.citations and answer.passages:
        _echo("\nClosest passages:")
        for h in answer.passages:
            _echo(f"[{h.rank}] {h.title} ({h.source}:{h.chunk.start}-{h.chunk.end}) score {h.score:.3f}")


@app.command("ask")
def ask_cmd(question: Optional[str] = typer.Argument(None), k: Optional[int] = KOpt,
            index: Optional[Path] = IndexOpt, corpus: Optional[Path] = CorpusOpt,
            doc: Optional[List[str]] = DocOpt, since: Optional[str] = SinceOpt, until: Optional[str] = UntilOpt,
            llm: bool = typer.Option(False, "--llm", help="Answer with the configured language model."),
            batch: Optional[str] = BatchOpt, as_json: bool = JsonOpt,
            export: Optional[Path] = typer.Option(None, "--export", help="Write the citations to FILE "
                                                  "(.md, .json, .bib, .ris, .csl.json)."),
            fmt: Optional[str] = typer.Option(None, "--format", help="Export format when the extension is not "
                                              "enough: markdown, json, bibtex, ris, csl-json.")) -> None:
    """A cited answer from the archive, or a plain statement that it has none."""
    with _errors():
        engine = _open_engine(corpus, index)
        mode = "llm" if llm else None
        if export is not None:
            rag.format_for_path(export, fmt)  # refuse a bad format before any work
        answers: list[rag.Answer] = []

        def one(q: str, qid: Optional[str]) -> dict[str, Any]:
            answer = engine.ask(q, k, mode=mode, id=qid, **_filters(doc, since, until))
            answers.append(answer)
            return answer.to_dict()

        if batch:
            _run_batch(batch, one)
        else:
            if question is None:
                raise rag.BadQuestion("Give a question, e.g. rag ask \"Who signed the treaty?\", or --batch FILE.")
            answer = engine.ask(question, k, mode=mode, **_filters(doc, since, until))
            answers.append(answer)
            if as_json:
                _print_json(answer.to_dict())
            else:
                _print_answer(answer)
        if export is not None:
            used = rag.write_export(answers, export, fmt)
            _echo(f"Exported {len(answers)} answer(s) as {used} to {export}", err=True)


@app.command("eval")
def eval_cmd(qa: Optional[Path] = typer.Argument(None, help="Questions with evidence (JSON Lines)."),
             beir: Optional[Path] = typer.Option(None, "--beir", help="A BEIR-format folder to evaluate on."),
             squad: Optional[Path] = typer.Option(None, "--squad", help="A SQuAD 2.0 JSON file: index its "
                                                  "articles and ask its questions against all of them."),
             sample: Optional[int] = typer.Option(None, "--sample", help="With --squad: ask only N random "
                                                  "questions (seeded)."),
             work: Optional[Path] = typer.Option(None, "--work", help="With --squad: folder for its corpus and "
                                                 "index (default: a cache folder per file)."),
             k: int = typer.Option(5, "-k", help="Passages per question."),
             index: Optional[Path] = IndexOpt, corpus: Optional[Path] = CorpusOpt, as_json: bool = JsonOpt) -> None:
    """Answer quality on a question set, on a SQuAD 2.0 file, or nDCG@10 / Recall@100 on a BEIR folder."""
    from rag import evaluation

    with _errors():
        settings = _settings(corpus, index)
        if squad is not None:
            report = evaluation.evaluate_squad(squad, settings, sample=sample, k=k, work=work,
                                               progress=None if as_json else _warn)
        elif beir is not None:
            report = evaluation.evaluate_beir(beir, settings, progress=None if as_json else _warn)
        elif qa is not None:
            report = evaluation.evaluate_qa(qa, settings, k=k)
        else:
            raise rag.BadQuestion("Give a question file (rag eval QA.jsonl), --squad FILE.json or --beir DIR.")
        if as_json:
            _print_json(report)
        else:
            _echo(evaluation.format_report(report))


def _chat_app() -> Path:
    """The Streamlit script of the installed `ui` package (the same file in a checkout)."""
    from importlib.resources import files

    try:
        app_file = Path(str(files("ui").joinpath("app.py")))
    except (ImportError, TypeError):  # no package `ui`, or a module of that name that is not ours
        app_file = None
    if app_file is None or not app_file.is_file():
        raise rag.RagError("The chat app (the package ui, with ui/app.py) is not installed beside rag. Reinstall "
                           "the package: pip install . (or pip install -e . in a checkout).")
    return app_file


@app.command("ui")
def ui_cmd(corpus: Optional[Path] = CorpusOpt, index: Optional[Path] = IndexOpt,
           host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
           port: int = typer.Option(8501, "--port", help="Port to listen on.")) -> None:
    """Launch the Streamlit chat (builds the index first if it is missing or stale)."""
    with _errors():
        app_file = _chat_app()
        settings = _settings(corpus, index)
        status = rag.index_status(settings)
        if not status.ready or status.corpus_changed or status.settings_changed:
            _echo("Building the index first ...", err=True)
            try:
                report = rag.build_index(settings, warn=_warn)
            except rag.IndexLocked:
                if not status.ready:  # nothing to serve until that build finishes
                    raise
                # another instance or an ingest worker is building: serve the live index, follow the new one
                _echo("Another build is running; serving the live index until it finishes.", err=True)
            else:
                _echo(f"Indexed {report.documents} articles ({report.chunks_embedded} chunks embedded, "
                      f"{report.chunks_reused} reused).", err=True)
        env = dict(os.environ, RAG_CORPUS=str(settings.paths.corpus.resolve()),
                   RAG_INDEX=str(settings.paths.index.resolve()))
        cmd = [sys.executable, "-m", "streamlit", "run", str(app_file), "--server.address", host,
               "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--client.toolbarMode", "minimal"]
        _echo(f"Open http://{host}:{port} in a browser (Ctrl+C stops the app).", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        if os.name == "nt":  # no exec that keeps the process there
            import subprocess

            raise typer.Exit(subprocess.call(cmd, env=env))
        # The server replaces this process rather than running as its child: a signal for `rag ui` (Ctrl+C,
        # SIGTERM from a service manager, SIGKILL) reaches the server itself, which has no parent to outlive,
        # and the memory of the build above is given back.
        os.execve(sys.executable, cmd, env)


@app.command("encoder")
def encoder_cmd(as_json: bool = JsonOpt) -> None:
    """The encoder the settings select; an ONNX one is derived from the model first if it is not cached yet."""
    with _errors():
        settings = rag.load_settings()
        progress, stop = _progress_bar(not as_json and sys.stderr.isatty())
        try:
            info = rag.encoder_info(settings.embedding, progress)
        finally:
            stop()
        if as_json:
            _print_json(info)
            return
        typer.echo(f"Encoder:  {info['backend']} for model {info['model']}")
        if "file" not in info:
            typer.echo("Runs:     sentence-transformers on torch, as the model folder declares it")
            return
        size = Path(info["file"]).stat().st_size
        typer.echo(f"Runs:     {info['file']} ({size / 2**20:.1f} MiB), derived {info['made_at']} in "
                   f"{info['seconds']} s with " + ", ".join(f"{k} {v}" for k, v in info["made_with"].items()))
        check = info["check"]
        typer.echo(f"Checked:  cosine to torch's vectors on {check['probes']} probe texts: " + "; ".join(
            f"{name} mean {c['mean_cosine']:.4f} (min {c['min_cosine']:.4f})"
            for name, c in check.items() if isinstance(c, dict)))


@app.command("settings")
def settings_cmd() -> None:
    """Every setting with its default and meaning (set them in rag.toml or RAG_<SECTION>_<NAME>)."""
    for name, doc, default in rag.describe_settings():
        typer.echo(f"{name} = {default!s}\n    {doc}")
    with _errors():
        _echo("\n" + _reader_line(rag.reader_info(rag.load_settings())))


def _reader_line(info: dict | None) -> str:
    """One line naming the reader in force (`rag.reader_info`): its identity and held-out figures."""
    if info is None:
        return "Reader: off (answer.reader = \"off\"): first-stage scores choose and abstain."
    test = (info.get("validation") or {}).get("test", {})
    figures = (f"; held-out SQuAD articles ({', '.join(info.get('test_articles') or [])}): answered right "
               f"{test.get('answered_right')}, rightly abstained {test.get('rightly_abstained')}, overall "
               f"{test.get('overall')}") if test else ""
    return (f"Reader: {info.get('name')} {str(info.get('sha256'))[:12]} ({info.get('folder')}), trained from "
            f"{(info.get('source_model') or {}).get('id')} on {', '.join(info.get('trained_on') or [])}{figures}")


@reader_app.command("info")
def reader_info_cmd(as_json: bool = JsonOpt) -> None:
    """The reader in force: where it comes from, what it was trained on, how it did on held-out articles."""
    with _errors():
        info = rag.reader_info(rag.load_settings())
        if as_json:
            _print_json(info)
        else:
            _echo(_reader_line(info))


SquadOpt = typer.Option(..., "--squad", help="SQuAD 2.0 JSON file(s) (repeatable).")
ReaderOutOpt = typer.Option(Path("rag/reader/model"), "--output", help="Folder of reader.onnx and card.json.")
CalibrationOpt = typer.Option("Harvard_University,Islamism", "--calibration",
                              help="Articles held out to calibrate the decision (comma-separated titles).")
TestOpt = typer.Option("Warsaw,Force", "--test", help="Articles held out to measure it (comma-separated titles).")
NewsQuestionsOpt = typer.Option(Path("benchmarks/questions/bundled_reader_questions.jsonl"), "--news-questions",
                                help="News questions (JSON Lines with groups) to calibrate on as well.")
NewsCorpusOpt = typer.Option(Path("seeds"), "--news-corpus", help="The archive those news questions are about.")


def _reader_config(squad: List[Path], output: Path, calibration: str, test: str, news_questions: Path,
                   news_corpus: Path, **more: Any) -> Any:
    from rag.reader.train import TrainConfig

    return TrainConfig(squad=tuple(str(p) for p in squad), output=str(output),
                       calibration_articles=tuple(a for a in calibration.split(",") if a),
                       test_articles=tuple(a for a in test.split(",") if a),
                       news_questions=str(news_questions), news_corpus=str(news_corpus), **more)


@reader_app.command("train")
def reader_train_cmd(squad: List[Path] = SquadOpt, output: Path = ReaderOutOpt,
                     calibration: str = CalibrationOpt, test: str = TestOpt,
                     news_questions: Path = NewsQuestionsOpt, news_corpus: Path = NewsCorpusOpt,
                     epochs: float = typer.Option(2.0, "--epochs"), seed: int = typer.Option(13, "--seed"),
                     threads: int = typer.Option(2, "--threads", help="CPU threads for training."),
                     limit: int = typer.Option(0, "--limit", help="Questions per article pool, for a quick "
                                               "trial (0: all).")) -> None:
    """Train the reader from the bundled encoder (about 45 minutes on two cores), calibrate and measure it on
    held-out articles, print the figures, and write it as an int8 ONNX file with its card."""
    from rag.reader.train import train

    with _errors():
        config = _reader_config(squad, output, calibration, test, news_questions, news_corpus, epochs=epochs,
                                seed=seed, threads=threads, limit=limit)
        try:
            train(config, log=lambda m: _echo(m, err=True))
        except (ValueError, KeyError) as exc:
            raise rag.BadQuestion(f"Cannot train on {', '.join(map(str, squad))}: {exc}.") from None


@reader_app.command("calibrate")
def reader_calibrate_cmd(squad: List[Path] = SquadOpt, output: Path = ReaderOutOpt,
                         calibration: str = CalibrationOpt, test: str = TestOpt,
                         news_questions: Path = NewsQuestionsOpt, news_corpus: Path = NewsCorpusOpt) -> None:
    """Fit again how the reader's outputs and the first-stage evidence combine into a confidence (for example
    on news questions of your own about your own archive), and measure it on the held-out articles."""
    from rag.reader.train import recalibrate

    with _errors():
        config = _reader_config(squad, output, calibration, test, news_questions, news_corpus)
        try:
            recalibrate(config, log=lambda m: _echo(m, err=True))
        except (ValueError, KeyError) as exc:
            raise rag.BadQuestion(f"Cannot calibrate on {', '.join(map(str, squad))}: {exc}.") from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
