"""A tiny OpenAI-protocol server on 127.0.0.1 for tests: `POST /v1/chat/completions` answers with the
configured reply and records every request it gets. It can also be hostile: redirect elsewhere, drip its
reply a byte at a time, or send any body at all."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class OpenAIStub:
    """Set `content` (the assistant's answer), or `raw_body` (sent as is), `status` and `delay` (seconds).
    Hostile modes: `redirect_to` answers with that Location (`status` when it is a 3xx, else 307); `drip` sends the whole response (status line
    and headers too, unless `drip_body_only`) one byte every `drip` seconds."""

    content: str = ""
    raw_body: bytes | None = None
    status: int = 200
    delay: float = 0.0
    redirect_to: str | None = None
    drip: float = 0.0
    drip_body_only: bool = False
    requests: list[Recorded] = field(default_factory=list)
    dripped: int = 0  # bytes sent so far by a dripping reply
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the stub first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> "OpenAIStub":
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server protocol)
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                stub.requests.append(Recorded(self.path, dict(self.headers.items()), json.loads(raw or b"{}")))
                if self.path != "/v1/chat/completions":
                    self._send(404, b'{"error": {"message": "not found"}}')
                    return
                if stub.redirect_to is not None:
                    code = stub.status if 300 <= stub.status < 400 else 307
                    self._send(code, b"", {"Location": stub.redirect_to})
                    return
                time.sleep(stub.delay)
                self._send(stub.status, stub.raw_body if stub.raw_body is not None else json.dumps({
                    "id": "chatcmpl-stub",
                    "object": "chat.completion",
                    "model": "stub",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": stub.content}}],
                }).encode())

            def _send(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
                headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), **(extra or {})}
                try:
                    if stub.drip:
                        self._drip(status, headers, body)
                        return
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

            def _drip(self, status: int, headers: dict[str, str], body: bytes) -> None:
                head = f"HTTP/1.1 {status} OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
                if stub.drip_body_only:
                    self.wfile.write(head.encode())
                    self.wfile.flush()
                    head = ""
                data = head.encode() + body
                for i in range(len(data)):
                    if stub._server is None:
                        return
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    stub.dripped += 1
                    time.sleep(stub.drip)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def openai_stub() -> Iterator[OpenAIStub]:
    """A started stub, stopped after the test."""
    stub = OpenAIStub().start()
    try:
        yield stub
    finally:
        stub.stop()
