"""What every command shares: the app and its groups, the common options, one-line messages for library errors,
JSON output, the progress bar, and opening the engine."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import typer

import rag

from ..common.controls import json_safe, visible
from ..common.secrets import mask_secrets

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


def _reader_line(info: dict | None) -> str:
    """One line naming the reader in force (`rag.reader_info`): its identity and held-out figures."""
    if info is None:
        return "Reader: off (answer.reader = \"off\"): first-stage scores choose and abstain."
    test = (info.get("validation") or {}).get("test", {})
    figures = (f"; held-out SQuAD articles ({', '.join(info.get('test_articles') or [])}): answered right "
               f"{test.get('answered_right')}, rightly abstained {test.get('rightly_abstained')}, overall "
               f"{test.get('overall')}") if test else ""
    return (f"Reader: {info.get('name')} {str(info.get('sha256'))[:12]} ({info.get('folder')}), trained from "
            f"{(info.get('source_model') or {}).get('id')} on {', '.join(info.get('trained_on') or [])}"
            f"{' (' + str(info['device']) + ')' if info.get('device') else ''}{figures}")


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
