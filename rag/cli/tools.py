"""`rag eval`, `rag ui`, `rag encoder`, `rag settings` and `rag reader info | train | calibrate`."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

import rag

from .base import (CorpusOpt, IndexOpt, JsonOpt, _echo, _errors, _print_json, _progress_bar, _reader_line, _settings,
                   _warn, app, reader_app)


@app.command("eval")
def eval_cmd(qa: Optional[Path] = typer.Argument(None, help="Questions with evidence (JSON Lines)."),
             beir: Optional[Path] = typer.Option(None, "--beir", help="A BEIR-format folder to evaluate on."),
             squad: Optional[Path] = typer.Option(None, "--squad", help="A SQuAD 2.0 JSON file: index its "
                                                  "articles and ask its questions against all of them."),
             sample: Optional[int] = typer.Option(None, "--sample", help="With --squad: ask only N random "
                                                  "questions (seeded)."),
             paragraph: bool = typer.Option(False, "--paragraph", help="With --squad: give the reader each "
                                            "question's own paragraph and score its answer spans with the "
                                            "official SQuAD 2.0 EM/F1 (no-answer counted)."),
             work: Optional[Path] = typer.Option(None, "--work", help="With --squad: folder for its corpus and "
                                                 "index (default: a cache folder per file)."),
             dialogues: Optional[Path] = typer.Option(None, "--dialogues", help="Dialogues (JSON Lines with "
                                                      "turns): each turn answered in its conversation, beside "
                                                      "its standalone form asked alone."),
             k: int = typer.Option(5, "-k", help="Passages per question."),
             attributions: Optional[Path] = typer.Option(None, "--attributions", help="Labelled statements "
                                                         "(JSON Lines): statement precision and recall, speaker "
                                                         "accuracy, per kind, over the corpus."),
             index: Optional[Path] = IndexOpt, corpus: Optional[Path] = CorpusOpt, as_json: bool = JsonOpt) -> None:
    """Answer quality on a question set, on a SQuAD 2.0 file, nDCG@10 / Recall@100 on a BEIR folder, or who
    said what against labelled statements."""
    from .. import evaluation

    with _errors():
        settings = _settings(corpus, index)
        if paragraph and squad is None:
            raise rag.BadQuestion("--paragraph goes with --squad: rag eval --squad FILE.json --paragraph.")
        if attributions is not None:
            from ..evaluation.attributions import evaluate_attributions, summary

            report = evaluate_attributions(attributions, settings.paths.corpus, settings.corpus)
            if as_json:
                _print_json({k: v for k, v in report.items() if k != "ids"})
            else:
                _echo(summary(report))
            return
        if dialogues is not None:
            from ..evaluation.dialogues import evaluate_dialogues, format_dialogue_report

            report = evaluate_dialogues(dialogues, settings, k=k)
            if not as_json:
                _echo(format_dialogue_report(report))
                return
        elif squad is not None and paragraph:
            from ..evaluation.squad_paragraph import evaluate_squad_paragraph, format_paragraph_report

            report = evaluate_squad_paragraph(squad, settings, sample=sample, progress=None if as_json else _warn)
            if not as_json:
                _echo(format_paragraph_report(report))
                return
        elif squad is not None:
            report = evaluation.evaluate_squad(squad, settings, sample=sample, k=k, work=work,
                                               progress=None if as_json else _warn)
        elif beir is not None:
            report = evaluation.evaluate_beir(beir, settings, progress=None if as_json else _warn)
        elif qa is not None:
            report = evaluation.evaluate_qa(qa, settings, k=k)
        else:
            raise rag.BadQuestion("Give a question file (rag eval QA.jsonl), --dialogues FILE.jsonl, --attributions "
                                  "LABELS.jsonl, --squad FILE.json [--paragraph] or --beir DIR.")
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
ReaderOutOpt = typer.Option(Path("rag/answer/model"), "--output", help="Folder of reader.onnx and card.json.")
CalibrationOpt = typer.Option("", "--calibration", help="Articles held out to calibrate the decision (comma-separated "
                              "titles; default: rag.training.train.CALIBRATION_ARTICLES, ten dev-rest articles).")
TestOpt = typer.Option("", "--test", help="Articles held out to measure it (comma-separated titles; default: "
                       "rag.training.train.TEST_ARTICLES, nine dev-rest articles, Warsaw and Force).")
NewsQuestionsOpt = typer.Option(Path("benchmarks/questions/bundled_reader_questions.jsonl"), "--news-questions",
                                help="News questions (JSON Lines with groups) to calibrate on as well.")
NewsCorpusOpt = typer.Option(Path("seeds"), "--news-corpus", help="The archive those news questions are about.")


def _titles(listed: str) -> tuple[str, ...]:
    """Comma-separated article titles; a comma followed by "_" belongs to a title ("Fresno,_California")."""
    return tuple(t for t in re.split(r",(?!_)", listed) if t)


def _reader_config(squad: List[Path], output: Path, calibration: str, test: str, news_questions: Path,
                   news_corpus: Path, **more: Any) -> Any:
    from ..training.train import CALIBRATION_ARTICLES, TEST_ARTICLES, TrainConfig

    for path in squad:
        if not path.is_file():
            raise rag.BadQuestion(f"SQuAD file {path} does not exist or is not a file: give --squad a SQuAD JSON file.")
    if more.get("precision", "auto") not in ("auto", "fp32"):
        raise rag.BadQuestion(f"Unknown --precision {more['precision']!r}: use auto or fp32.")
    return TrainConfig(squad=tuple(str(p) for p in squad), output=str(output),
                       calibration_articles=_titles(calibration) or CALIBRATION_ARTICLES,
                       test_articles=_titles(test) or TEST_ARTICLES,
                       news_questions=str(news_questions), news_corpus=str(news_corpus), **more)


@reader_app.command("train")
def reader_train_cmd(squad: List[Path] = SquadOpt, output: Path = ReaderOutOpt,
                     calibration: str = CalibrationOpt, test: str = TestOpt,
                     news_questions: Path = NewsQuestionsOpt, news_corpus: Path = NewsCorpusOpt,
                     epochs: float = typer.Option(2.0, "--epochs"), seed: int = typer.Option(13, "--seed"),
                     threads: int = typer.Option(2, "--threads", help="CPU threads for training."),
                     limit: int = typer.Option(0, "--limit", help="Questions per article pool, for a quick "
                                               "trial (0: all)."),
                     max_questions: int = typer.Option(0, "--max-questions", help="Training questions: every "
                                                       "unanswerable one, answerable ones sampled (0: all)."),
                     precision: str = typer.Option("auto", "--precision", help="auto (bf16 where the CPU has "
                                                   "it, or a GPU) or fp32."),
                     checkpoint_minutes: float = typer.Option(15.0, "--checkpoint-minutes", help="Minutes "
                                                              "between checkpoints (resumed by the next run).")
                     ) -> None:
    """Train the reader from the bundled encoder (about 1.5 hours on two cores in bf16 with `make reader`),
    calibrate and measure it on held-out articles, print the figures, and write it as an int8 ONNX file with
    its card. An interrupted run resumes from its last checkpoint when run again with the same settings."""
    from ..training.train import train

    with _errors():
        config = _reader_config(squad, output, calibration, test, news_questions, news_corpus, epochs=epochs,
                                seed=seed, threads=threads, limit=limit, max_questions=max_questions,
                                precision=precision, checkpoint_minutes=checkpoint_minutes)
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
    from ..training.train import recalibrate

    with _errors():
        config = _reader_config(squad, output, calibration, test, news_questions, news_corpus)
        try:
            recalibrate(config, log=lambda m: _echo(m, err=True))
        except (ValueError, KeyError) as exc:
            raise rag.BadQuestion(f"Cannot calibrate on {', '.join(map(str, squad))}: {exc}.") from None
