"""The reader factory: the reader `answer.reader` names, loaded once per process and shared."""

from __future__ import annotations

import threading
from pathlib import Path

from ..errors import SettingsError
from .reader import Reader

_CACHE: dict[str, Reader] = {}
_CACHE_LOCK = threading.Lock()


def load_reader(setting: str = "bundled") -> Reader | None:
    """The reader `answer.reader` names ('bundled', a folder holding reader.onnx and card.json, or 'off' for
    None), loaded once per process."""
    if setting == "off":
        return None
    from .reader_onnx import MODEL_DIR, OnnxReader

    if setting == "bundled":
        folder = MODEL_DIR
    else:
        folder = Path(setting).expanduser()
        if not folder.is_dir():
            raise SettingsError(f"Setting answer.reader names {setting!r}, which is not a folder. Use 'bundled', "
                                "'off', or a folder holding reader.onnx and card.json.")
    key = str(folder.resolve())
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = OnnxReader(Path(key))
        return _CACHE[key]
