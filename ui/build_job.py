"""Index builds run in a background thread, one per index folder and per server process, so that the chat
(in this tab and in others) keeps answering from the live index while a new generation is written."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable

import rag

_STAGES = {"documents": "Reading and embedding the articles", "vectors": "Writing the vector and BM25 indexes"}


class BuildJob:
    """One run of `rag.build_index`; its fields are read by the page while the thread writes them."""

    def __init__(self, settings: rag.Settings, on_success: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.on_success = on_success
        self.stage = "starting"
        self.done = 0
        self.total = 0
        self.warnings: list[str] = []
        self.report: rag.BuildReport | None = None
        self.error: str | None = None
        self.started = time.time()
        self.finished_at: float | None = None
        self.thread = threading.Thread(target=self._run, name="rag-index-build", daemon=True)

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def _progress(self, stage: str, done: int, total: int) -> None:
        self.stage, self.done, self.total = stage, done, total

    def _run(self) -> None:
        try:
            self.report = rag.build_index(self.settings, progress=self._progress, warn=self.warnings.append)
            if self.on_success is not None:
                self.on_success()
        except rag.RagError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - shown in the page instead of a traceback
            logging.getLogger("rag.ui").error("The index build failed", exc_info=exc)
            self.error = (f"The build failed unexpectedly ({type(exc).__name__}: {exc}). "
                          "The live index is unchanged; try again or run: rag index build")
        finally:
            self.finished_at = time.time()

    @property
    def fraction(self) -> float:
        """Progress between 0 and 1: reading and embedding files is most of a build."""
        share = self.done / self.total if self.total else 0.0
        if self.stage == "documents":
            return min(0.9 * share, 0.9)
        if self.stage == "vectors":
            return 0.9 + 0.08 * share
        return 0.0

    @property
    def label(self) -> str:
        if self.stage == "starting":
            return "Starting the build (loading the model)…"
        share = self.done / self.total if self.total else 0.0
        return f"{_STAGES.get(self.stage, self.stage)}: {share:.0%}"

    @property
    def summary(self) -> str:
        """One line on a finished successful build."""
        r = self.report
        assert r is not None
        when = time.strftime("%H:%M:%S", time.localtime(self.finished_at))
        first = r.full_reason == "no previous index"
        full = f" Full rebuild: {r.full_reason}." if r.full and r.full_reason and not first else ""
        return (f"Index {'built' if first else 'rebuilt'} at {when} in {r.seconds:.1f} s: {r.documents} articles, "
                f"{r.chunks} chunks. Articles: {r.added} added, {r.changed} changed, {r.removed} removed, "
                f"{r.unchanged} unchanged. Chunks embedded: {r.chunks_embedded} ({r.chunks_reused} reused).{full}")


class BuildJobs:
    """The builds of this server process, by index folder; at most one runs per folder."""

    def __init__(self) -> None:
        self._jobs: dict[str, BuildJob] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(settings: rag.Settings) -> str:
        return str(Path(settings.paths.index).resolve())

    def get(self, settings: rag.Settings) -> BuildJob | None:
        """The running or last finished build of this index folder."""
        return self._jobs.get(self._key(settings))

    def start(self, settings: rag.Settings, on_success: Callable[[], None] | None = None) -> BuildJob:
        """Start a build unless one already runs for this folder (that one is returned)."""
        with self._lock:
            job = self._jobs.get(self._key(settings))
            if job is not None and not job.finished:
                return job
            job = self._jobs[self._key(settings)] = BuildJob(settings, on_success)
            job.thread.start()
            return job
