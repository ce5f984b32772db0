"""A small OpenAI-compatible chat-completions server on 127.0.0.1, for real provider classes.

``ChatOpenAI`` (langchain-openai) pointed at it runs its real code paths (HTTP client, request
building, response and SSE parsing, usage, tool calls, ``response_format``) against canned,
deterministic answers: ``"<model> answers: <last user text>"``, ``"<model> read the tool
result: <result>"`` after a tool message, a tool call when tools are offered and the last
message is the user's (or ``tool_choice`` forces one), a JSON object filling the schema of a
``response_format``, streaming word by word with a final usage chunk when
``stream_options.include_usage`` is set. Arguments are read from the question as the offline
stand-ins read them (:func:`tests.langchain_hybrid.stand_ins.arguments_from_question`).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.langchain_hybrid.stand_ins import arguments_from_question, pick_tool

_WORDS = re.compile(r"\S+\s*")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    return ""


def _answer(request: dict[str, Any]) -> tuple[str, list[dict[str, Any]], int]:
    """The text, the tool calls and the prompt tokens of the answer to ``request``."""
    messages = request.get("messages", [])
    model = request.get("model", "stand-in")
    question = next(
        (_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    prompt_tokens = sum(len(_text(m.get("content")).split()) for m in messages)
    last = messages[-1] if messages else {}
    tools = request.get("tools") or []
    choice = request.get("tool_choice")
    forced = choice not in (None, "auto", "none")
    if tools and choice != "none" and (forced or last.get("role") == "user"):
        function = pick_tool(tools, choice, question)
        call = {
            "id": f"call_{uuid.uuid4().hex[:12]}",
            "type": "function",
            "function": {
                "name": function["name"],
                "arguments": json.dumps(
                    arguments_from_question(function.get("parameters", {}), question)
                ),
            },
        }
        return "", [call], prompt_tokens
    response_format = request.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = response_format["json_schema"].get("schema", {})
        return json.dumps(arguments_from_question(schema, question)), [], prompt_tokens
    if last.get("role") == "user" or not _text(last.get("content")):
        text = f"{model} answers: {question}"
    else:
        text = f"{model} read the tool result: {_text(last.get('content'))}"
    stop = request.get("stop") or []
    for word in [stop] if isinstance(stop, str) else stop:
        if word in text:
            text = text[: text.index(word)]
    return text, [], prompt_tokens


class _Handler(BaseHTTPRequestHandler):
    server_version = "openai-stand-in/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append(request)  # type: ignore[attr-defined]
        if not self.path.endswith("/chat/completions"):
            self._send_json({"error": {"message": f"no route {self.path}"}}, status=404)
            return
        text, calls, prompt_tokens = _answer(request)
        completion_tokens = max(1, len(text.split())) if not calls else 1
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        model = request.get("model", "stand-in")
        if request.get("stream"):
            self._stream(model, text, calls, usage, request.get("stream_options") or {})
            return
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        self._send_json(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if calls else "stop",
                    }
                ],
                "usage": usage,
            }
        )

    def _send_json(self, body: dict[str, Any], status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(
        self,
        model: str,
        text: str,
        calls: list[dict[str, Any]],
        usage: dict[str, int],
        options: dict[str, Any],
    ) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        ident = f"chatcmpl-{uuid.uuid4().hex[:12]}"

        def event(choices: list[dict[str, Any]], **extra: Any) -> None:
            body = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": choices,
                **extra,
            }
            self.wfile.write(f"data: {json.dumps(body)}\n\n".encode())

        if calls:
            delta = {
                "role": "assistant",
                "tool_calls": [{"index": i, **call} for i, call in enumerate(calls)],
            }
            event([{"index": 0, "delta": delta, "finish_reason": None}])
        else:
            for i, word in enumerate(_WORDS.findall(text) or [""]):
                delta = {"content": word, **({"role": "assistant"} if i == 0 else {})}
                event([{"index": 0, "delta": delta, "finish_reason": None}])
        finish = "tool_calls" if calls else "stop"
        event([{"index": 0, "delta": {}, "finish_reason": finish}])
        if options.get("include_usage"):
            event([], usage=usage)
        self.wfile.write(b"data: [DONE]\n\n")


class OpenAIStandInServer(ThreadingHTTPServer):
    """The server; ``requests`` holds every request body it received."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []

    @property
    def base_url(self) -> str:
        """The ``base_url`` to give ``ChatOpenAI``."""
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@contextmanager
def running_server() -> Iterator[OpenAIStandInServer]:
    """Start the server on a free port of 127.0.0.1 in a thread; stop it afterwards."""
    server = OpenAIStandInServer()
    thread = threading.Thread(target=server.serve_forever, name="openai-stand-in", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
