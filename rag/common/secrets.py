"""One function that takes secrets out of any text shown to a person: messages, `where` lines, JSON output.

`mask_secrets(text, *urls)` hides
- the password of every URL in the text (`scheme://user:PASSWORD@host`, whatever the scheme, also
  `postgresql+psycopg://`; a password holding '@' is hidden up to the last '@' of the address),
- every `password=` and `sslpassword=` value (URL query parameters and key=value connection strings, quoted or not),
- and every password of the given connection strings wherever it appears literally, as libpq and psycopg echo
  parts of a malformed URL in their errors (`invalid percent-encoded token: "SECRET%zz2"`, a host `RET3@db`).
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:password@ -- the password runs to the last '@' before the query (or the token's end)
_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s/?#@:'\"]*):([^\s'\"]*)")
_PARAM = re.compile(r"(?i)\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|\"[^\"]*\"?|[^\s&'\"]*)")


def _split_userinfo(rest: str) -> tuple[str, str] | None:
    """(password, remainder) of the text after `user:`, or None when no '@' ends a password there."""
    query = rest.find("?")
    end = query if query >= 0 and "@" in rest[:query] else len(rest)
    at = rest.rfind("@", 0, end)
    if at < 0:
        return None
    return rest[:at], rest[at:]


def secrets_of(url: str) -> set[str]:
    """The passwords a connection string holds (URL userinfo, password= and sslpassword= values), with the
    '@'-separated parts of each (a malformed URL may show only a part), as they are written."""
    found: set[str] = set()
    for m in _URL.finditer(url):
        split = _split_userinfo(m.group(3))
        if split and split[0]:
            found.add(split[0])
    for m in _PARAM.finditer(url):
        value = m.group(2).strip("'\"")
        if value:
            found.add(value)
    for value in list(found):
        found.update(value.split("@"))
    return {s for s in found if len(s) >= 4 and s != MASK}  # shorter ones would mangle words; URLs still masked


def mask_secrets(text: str, *urls: str) -> str:
    """`text` with every password in it replaced by ***: those of URLs and password= parameters found in it, and
    those of `urls` (the connection strings in use) wherever they appear."""

    def url(m: re.Match[str]) -> str:
        split = _split_userinfo(m.group(3))
        if split is None:
            return m.group(0)
        return f"{m.group(1)}{m.group(2)}:{MASK}{split[1]}"

    out = _URL.sub(url, text)
    out = _PARAM.sub(lambda m: m.group(1) + MASK, out)
    for secret in sorted({s for u in urls if u for s in secrets_of(u)}, key=len, reverse=True):
        out = out.replace(secret, MASK)
    return out
