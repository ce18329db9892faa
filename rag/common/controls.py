"""Characters that must not reach a terminal or an exported file raw: control characters (ANSI colours,
OSC-8 links and window titles all start with ESC or a C1 control) and the bidirectional overrides that make
text display as something else. Archive text and model replies may hold any of them."""

from __future__ import annotations

import re

# C0 controls but tab and line feed, DEL, C1 controls, bidirectional embeddings, overrides and isolates, and
# lone surrogates (a byte that is not UTF-8 in a file name or an argument), which no terminal can be sent
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# what JSON leaves raw (it escapes C0 itself): DEL, C1, bidi controls, surrogates, JavaScript line separators
_JSON_RAW = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """`text` with every unsafe character written as an inert escape (ESC becomes the four characters
    `\\x1b`); a CRLF line end becomes a plain line break. Tabs and line breaks are kept."""
    return _UNSAFE.sub(_escape, text.replace("\r\n", "\n"))


def has_unsafe(text: str) -> bool:
    return _UNSAFE.search(text) is not None


def json_safe(encoded: str) -> str:
    """JSON text (from json.dumps) with the characters JSON leaves raw written as \\u escapes: the same data,
    safe to print."""
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", encoded)
