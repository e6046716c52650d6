"""A fake OpenAI-compatible chat-completions server for tests and benchmarks.

:class:`FakeChatServer` listens on ``127.0.0.1`` only (an ephemeral port), speaks
HTTP/1.1 with keep-alive, and answers ``POST /v1/chat/completions`` like a model
that follows the prompt: it reads the allowed scores from the prompt's
``Allowed scores: [...]`` line and scores each trait from the Big Five markers
in the person block (the lexicon rater's evidence), plus noise when the
request's temperature is above 0. Faults are injected by a *script*: a mapping
from a substring of the request's messages to the actions to take for the next
requests that contain it (then ``ok``)::

    ok            a valid answer            fenced        valid JSON in a ```json fence
    429[:s]       429 with Retry-After: s   500 / 503     server error
    slow:s        sleep s seconds, then ok  drop          close the connection, no reply
    malformed     content that is not JSON  out_of_range  a score of 7
    wrong_type    a score given as a word   missing_key   no "neuroticism"
    refusal       message.refusal set       refusal_text  "I'm sorry, ..." as content
    content_filter  finish_reason content_filter
    insufficient  every score 0             malformed_body  a response body that is not JSON
    echo_auth     401 whose body repeats the Authorization header

Run it as a process for benchmarks: ``python -m personax.traits.testing --latency 0.1``
prints its URL and serves until killed.

Example:
    >>> with FakeChatServer() as server:          # doctest: +SKIP
    ...     server.url
    'http://127.0.0.1:...'
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import hashlib
import json
import random
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from personax.traits._common import TRAIT_KEYS, TRAITS

_ALLOWED = re.compile(r"Allowed scores:\s*(\[[^\]\n]*\])")
_PERSON = re.compile(r"<person>(.*?)</person>", re.DOTALL)
_TEXT_RANK = ["insufficient information", "very low", "low", "medium", "high", "very high"]
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable"}


class FakeChatServer:
    """A loopback chat-completions server with fault injection (see the module docstring).

    Args:
        latency: Seconds every reply waits (for throughput benchmarks).
        script: Substring -> actions for the next matching requests.
        seed: Seed of the sampling noise.
        expected_key: When set, requests without ``Authorization: Bearer <key>`` get 401.
    """

    def __init__(self, latency: float = 0.0, script: Mapping[str, Sequence[str]] | None = None, seed: int = 0,
                 expected_key: str | None = None):
        self.latency = float(latency)
        self.script = {k: collections.deque(v) for k, v in (script or {}).items()}
        self.expected_key = expected_key
        self.rng = random.Random(seed)
        self.requests = 0
        self.calls: collections.Counter[str] = collections.Counter()
        self.actions: collections.Counter[str] = collections.Counter()
        self.authorized = 0
        from personax.traits._lexicon import LexiconRater

        self._lexicon = LexiconRater()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeChatServer:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            self._server.close()
            pending = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.run_until_complete(self._server.wait_closed())
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="fake-chat-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake chat server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FakeChatServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                headers = {}
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                method, path, *_ = request_line.decode("latin-1").split()
                reply = await self._respond(method, path, headers, body)
                if reply is None:  # "drop"
                    break
                status, payload, extra = reply
                head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "Content-Type: application/json",
                        f"Content-Length: {len(payload)}", "Connection: keep-alive",
                        *(f"{k}: {v}" for k, v in extra.items())]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def _next_action(self, text: str) -> str:
        with self._lock:
            for needle, actions in self.script.items():
                if needle in text and actions:
                    return actions.popleft()
        return "ok"

    async def _respond(self, method: str, path: str, headers: Mapping[str, str],
                       body: bytes) -> tuple[int, bytes, dict[str, str]] | None:
        with self._lock:
            self.requests += 1
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            return 404, b'{"error": {"message": "not found"}}', {}
        try:
            request = json.loads(body)
            messages = request["messages"]
        except (ValueError, KeyError, TypeError):
            return 400, b'{"error": {"message": "bad request"}}', {}
        text = "\n".join(str(m.get("content", "")) for m in messages)
        first_user = next((m["content"] for m in messages if m.get("role") == "user"), "")
        kind = "repair" if len(messages) > 2 and messages[-2].get("role") == "assistant" else "call"
        prompt_id = hashlib.sha256(first_user.encode()).hexdigest()[:16]
        auth = headers.get("authorization", "")
        action = self._next_action(text)
        with self._lock:
            self.calls[f"{kind}:{prompt_id}"] += 1
            self.actions[action] += 1
            if self.expected_key is not None and auth == f"Bearer {self.expected_key}":
                self.authorized += 1
        if self.expected_key is not None and auth != f"Bearer {self.expected_key}" and action != "echo_auth":
            return 401, b'{"error": {"message": "invalid api key"}}', {}
        if self.latency:
            await asyncio.sleep(self.latency)
        name, _, arg = action.partition(":")
        if name == "429":
            return 429, b'{"error": {"message": "rate limited"}}', {"Retry-After": arg or "0"}
        if name in ("500", "503"):
            return int(name), b'{"error": {"message": "server error"}}', {}
        if name == "drop":
            return None
        if name == "echo_auth":
            return 401, json.dumps({"error": {"message": f"bad credentials: {auth}"}}).encode(), {}
        if name == "malformed_body":
            return 200, b'{"choices": [{"message": {"content": "{\\"openness\\"', {}
        if name == "slow":
            await asyncio.sleep(float(arg or 5))
        content, refusal, finish = self._content(name, first_user, float(request.get("temperature") or 0.0))
        reply = {
            "id": f"fake-{self.requests}", "object": "chat.completion", "model": request.get("model", "fake"),
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": content, "refusal": refusal}}],
            "usage": {"prompt_tokens": len(text) // 4, "completion_tokens": 60, "total_tokens": len(text) // 4 + 60},
        }
        return 200, json.dumps(reply).encode(), {}

    # ------------------------------------------------------------------ the "model"

    @functools.lru_cache(maxsize=4096)
    def _evidence(self, text: str) -> dict[str, float]:
        return self._lexicon.evidence(text)

    def _levels(self, prompt: str) -> list[Any]:
        found = _ALLOWED.search(prompt)
        allowed = json.loads(found.group(1)) if found else [0, 1, 2, 3]
        if all(isinstance(a, int) for a in allowed):
            return sorted(allowed)
        return [label for label in _TEXT_RANK if label in allowed] or list(allowed)

    def _scores(self, prompt: str, temperature: float) -> dict[str, Any]:
        levels = self._levels(prompt)  # levels[0] means "insufficient information"
        top = len(levels) - 1
        person = _PERSON.search(prompt)
        evidence = self._evidence(person.group(1) if person else prompt)
        scores = {}
        for trait in TRAITS:
            value = evidence[trait]
            if value != value:  # no evidence
                scores[trait] = levels[0]
                continue
            with self._lock:
                noise = self.rng.gauss(0.0, temperature) if temperature > 0 else 0.0
            position = (top + 1) / 2 + value * (top - 1) / 2 + noise
            scores[trait] = levels[int(min(top, max(1, round(position))))]
        return scores

    def _content(self, action: str, prompt: str, temperature: float) -> tuple[str | None, str | None, str]:
        if action == "refusal":
            return None, "I can't help with assessing real people.", "stop"
        if action == "refusal_text":
            return "I'm sorry, but I can't provide personality assessments of real individuals.", None, "stop"
        if action == "content_filter":
            return "", None, "content_filter"
        if action == "malformed":
            return "Sure! Openness: high, conscientiousness: medium. Hope this helps.", None, "stop"
        scores = self._scores(prompt, temperature)
        if action == "insufficient":
            scores = {t: self._levels(prompt)[0] for t in TRAITS}
        if action == "out_of_range":
            scores = {t: 7 for t in TRAITS}
        if action == "wrong_type":
            scores = {t: "two" if isinstance(s, int) else 2 for t, s in scores.items()}
        answer = {key: {"description": f"Fake assessment of {key}.", "score": scores[letter]}
                  for key, letter in TRAIT_KEYS.items()}
        if action == "missing_key":
            answer.pop("neuroticism")
        content = json.dumps(answer)
        if action == "fenced":
            content = f"```json\n{content}\n```"
        return content, None, "stop"


def main(argv: Sequence[str] | None = None) -> None:
    """Serves a fake chat-completions endpoint on 127.0.0.1 until killed."""
    import time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    server = FakeChatServer(latency=args.latency, seed=args.seed).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
