"""Conversations at the command line: `rag chat` (an interactive terminal conversation with line editing and
history) and the dialogue lines of `rag ask --batch` (each turn answered in the context of the earlier ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, List, Mapping, Optional

import typer

from ..answer.conversation import Conversation
from ..engine import Engine
from ..errors import BadQuestion, ExportError, RagError
from ..export import write_export
from ..records import Answer
from .base import (CorpusOpt, DocOpt, IndexOpt, KOpt, SinceOpt, UntilOpt, _echo, _errors, _filters, _open_engine,
                   _print_answer, app)

HELP = ("Type a question; follow-ups may say “he”, “that poll” or “And the UK?”. Commands: /export FILE "
        "(format by extension: .md .json .bib .ris .csl.json), /save FILE, /new, /quit.")


def dialogue_turns(line: Mapping[str, Any]) -> list[str]:
    """The questions of a dialogue line {"id": ..., "turns": [{"question": ...}, ...]}; BadQuestion if malformed."""
    turns = line.get("turns")
    if not isinstance(turns, list) or not turns or not all(
            isinstance(t, dict) and isinstance(t.get("question"), str) for t in turns):
        raise BadQuestion('A dialogue line needs a non-empty list of turns, each with a "question": '
                          '{"id": "d1", "turns": [{"question": "..."}, {"question": "..."}]}.')
    return [t["question"] for t in turns]


def answer_dialogue(engine: Engine, questions: Iterable[str], **ask: Any
                    ) -> tuple[Conversation, list[dict[str, Any]]]:
    """Each question answered in the conversation of the ones before it: the conversation and one row per
    turn (answer JSON with `standalone`; a turn that fails is {"question", "error"}, left out of the
    conversation)."""
    conversation = Conversation()
    rows: list[dict[str, Any]] = []
    for question in questions:
        try:
            answer = engine.ask(question, conversation=conversation, **ask)
        except RagError as exc:
            rows.append({"question": question, "error": str(exc)})
            continue
        conversation = conversation.then(answer)
        rows.append(answer.to_dict())
    return conversation, rows


def load_conversation(path: Path) -> Conversation:
    """A conversation saved with /save or by the app."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadQuestion(f"Cannot read the conversation {str(path)!r}: {getattr(exc, 'strerror', None) or exc}. "
                          "Give a file saved by /save in rag chat or by the app.") from None
    return Conversation.from_json(text)


def save_conversation(conversation: Conversation, path: Path) -> None:
    """Write the conversation as JSON (atomically enough: a temporary file replaced)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ExportError(f"Cannot write {str(path)!r}: folder {str(path.parent)!r} does not exist.")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(conversation.to_json(), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ExportError(f"Cannot write {str(path)!r}: {exc.strerror or exc}.") from None


def _line_editing() -> None:
    """Arrow keys, in-line editing and the history of this session's questions (GNU readline where present)."""
    try:
        import readline  # noqa: F401  (input() uses it once imported)
    except ImportError:  # Windows without pyreadline: plain input
        pass


class ChatSession:
    """One terminal conversation: reads a line, runs a command or answers it in context, prints the result."""

    def __init__(self, engine: Engine, show: Callable[[Answer], None], say: Callable[[str], None],
                 conversation: Conversation | None = None, **ask: Any) -> None:
        self.engine, self.show, self.say, self.ask = engine, show, say, ask
        self.conversation = conversation or Conversation()

    def handle(self, line: str) -> bool:
        """Run one line; False when the session should end."""
        line = line.strip()
        if not line:
            return True
        if line.startswith("/"):
            return self._command(line)
        try:
            answer = self.engine.ask(line, conversation=self.conversation, **self.ask)
        except RagError as exc:
            self.say(f"error: {exc}")
            return True
        if answer.standalone and answer.standalone != answer.question:
            self.say(f"Answering: {answer.standalone}")
        self.show(answer)
        self.conversation = self.conversation.then(answer)
        return True

    def _command(self, line: str) -> bool:
        name, _, arg = line.partition(" ")
        arg = arg.strip()
        try:
            if name in ("/quit", "/exit", "/q"):
                return False
            if name == "/new":
                self.conversation = Conversation()
                self.say("New conversation: earlier turns are forgotten.")
            elif name in ("/export", "/save") and not arg:
                self.say(f"Give a file name: {name} FILE")
            elif name == "/export":
                used = write_export(self.conversation.answers, arg)
                self.say(f"Exported {len(self.conversation)} answer(s) as {used} to {arg}")
            elif name == "/save":
                save_conversation(self.conversation, Path(arg))
                self.say(f"Saved {len(self.conversation)} turn(s) to {arg} (reopen with: rag chat --resume {arg})")
            elif name == "/help":
                self.say(HELP)
            else:
                self.say(f"Unknown command {name}. {HELP}")
        except RagError as exc:
            self.say(f"error: {exc}")
        return True

    def run(self) -> None:
        """Read lines until /quit or end of input (Ctrl+D); Ctrl+C abandons the line being typed."""
        _line_editing()
        if self.conversation.turns:
            last = self.conversation.turns[-1]
            self.say(f"Resumed a conversation of {len(self.conversation)} turn(s); the last question: "
                     f"{last.standalone}")
        self.say(HELP)
        while True:
            try:
                line = input("you> ")
            except EOFError:
                self.say("")
                return
            except KeyboardInterrupt:
                self.say("")
                continue
            if not self.handle(line):
                return


@app.command("chat")
def chat_cmd(resume: Optional[Path] = typer.Option(None, "--resume", help="Go on with a conversation saved by "
                                                   "/save or by the app."),
             k: Optional[int] = KOpt, index: Optional[Path] = IndexOpt, corpus: Optional[Path] = CorpusOpt,
             doc: Optional[List[str]] = DocOpt, since: Optional[str] = SinceOpt, until: Optional[str] = UntilOpt,
             llm: bool = typer.Option(False, "--llm", help="Answer (and rewrite follow-ups) with the configured "
                                      "language model.")) -> None:
    """A conversation in the terminal: follow-up questions are resolved against the earlier turns."""
    with _errors():
        conversation = load_conversation(resume) if resume is not None else None
        engine = _open_engine(corpus, index)
        session = ChatSession(engine, lambda a: (_print_answer(a), _echo()), _echo, conversation, k=k,
                              mode="llm" if llm else None, **_filters(doc, since, until))
        session.run()
