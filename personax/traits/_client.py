"""An OpenAI-compatible chat-completions rater (async, httpx).

One client covers hosted APIs and local servers (vLLM, Ollama, llama.cpp server,
LM Studio): ``POST {base_url}/chat/completions`` with ``model``, ``messages``,
``temperature`` and ``max_tokens``. The API key is read from the environment
variable *named* in the config (``api_key_env``) when the run starts; it is
sent only in the ``Authorization`` header, never stored, and replaced by
``[REDACTED]`` wherever a server echoes it into a body or an error.

Each request is looked up in the :class:`~personax.traits._cache.RequestStore`
first. 429, 5xx, malformed response bodies, timeouts and connection errors are
retried with exponential backoff and jitter (``Retry-After`` honoured, up to
``retry_after_max_s``); after the last retry the request is stored as ``failed``
with its reason and the run goes on. Concurrency is bounded by
``max_concurrency`` and the request rate by ``rate_limit_per_s``.

A rater that answers nothing is an error, not a column of missing scores: when
the first ``abort_after_failures`` requests all fail (a wrong key's 401, a wrong
model's 404) no more are sent, and :func:`require_answers` raises with the
server's message. Secrets (the key's value, key-like URL query parameters and
header values) are redacted from every stored or logged text by
:func:`personax._secrets.redact_text`.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import email.utils
import json
import logging
import os
import random
import ssl
import time
from collections.abc import Mapping, Sequence
from typing import Any

import certifi
import httpx
from tqdm.auto import tqdm

from personax import _secrets
from personax.traits._cache import FINAL_STATUSES, RequestStore, request_key
from personax.traits._prompts import AnswerError, ParsedAnswer, PromptFormat, Refusal, parse_answer, repair_message

log = logging.getLogger(__name__)


class RaterConfigError(ValueError):
    """A rater is configured wrongly (e.g. a key in the config instead of an environment variable)."""


class RaterFailedError(RuntimeError):
    """A rater answered none of its requests (every one failed, was refused or was unusable)."""


@dataclasses.dataclass
class ChatConfig:
    """Settings of one OpenAI-compatible rater (``conf/traits/raters/*.yaml``)."""

    name: str
    base_url: str
    model: str
    api_key_env: str | None = None
    temperature: float = 0.0
    max_tokens: int = 800
    max_concurrency: int = 8
    rate_limit_per_s: float = 0.0
    timeout_s: float = 60.0
    max_retries: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    retry_after_max_s: float = 300.0
    repair: bool = True
    retry_failed: bool = True
    abort_after_failures: int = 20  # stop sending when this many requests failed and none was answered; 0: never
    extra_body: dict[str, Any] = dataclasses.field(default_factory=dict)
    headers: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_mapping(cls, name: str, node: Mapping[str, Any]) -> ChatConfig:
        node = dict(node)
        for secret in ("api_key", "key", "token", "authorization"):
            if node.get(secret):
                raise RaterConfigError(
                    f"rater '{name}': do not put the API key in the config ('{secret}'); export it in an "
                    f"environment variable and set api_key_env to that variable's name"
                )
        if any(h.lower() == "authorization" for h in (node.get("headers") or {})):
            raise RaterConfigError(f"rater '{name}': set api_key_env instead of an Authorization header")
        env = node.get("api_key_env")
        if env is not None and (not isinstance(env, str) or _secrets.looks_like_key(env)):
            # Never echo the value: it is most likely the key itself.
            raise RaterConfigError(f"rater '{name}': api_key_env must name an environment variable, got a value "
                                   "that looks like a key; export the key (export MY_API_KEY=...) and set "
                                   "api_key_env=MY_API_KEY")
        fields = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in node.items() if k in fields and k != "name"}
        for key in ("extra_body", "headers"):
            known[key] = dict(known.get(key) or {})
        if not known.get("base_url") or not known.get("model"):
            raise RaterConfigError(f"rater '{name}' needs base_url and model")
        return cls(name=name, **known)

    def params(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, **self.extra_body}


@dataclasses.dataclass
class Task:
    """One request: a person in one format, one repeat."""

    person_id: str
    fmt: PromptFormat
    repeat: int
    messages: list[dict[str, str]]


@dataclasses.dataclass
class Outcome:
    """What a request gave: status, levels per trait (ok), error, and whether it came from the store."""

    person_id: str
    format: str
    repeat: int
    status: str
    scores: dict[str, int] | None = None
    descriptions: dict[str, str] | None = None
    error: str | None = None
    cached: bool = False


class _Endpoint:
    """POSTs to one URL over one keep-alive connection (httpx's transport, without the client layers).

    The client's redirect, cookie, auth and URL-merging layers cost more CPU than the request
    itself at hundreds of requests per second and are not needed for one fixed endpoint.
    """

    def __init__(self, url: str, headers: Mapping[str, str], timeout_s: float, tls: ssl.SSLContext):
        self.url = httpx.URL(url)
        self.headers = [(k.encode(), v.encode()) for k, v in {**headers, "Accept-Encoding": "identity"}.items()]
        self.timeout = {"connect": timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
        self.transport = httpx.AsyncHTTPTransport(verify=tls, trust_env=False,
                                                  limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))

    async def __aenter__(self) -> _Endpoint:
        await self.transport.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.transport.__aexit__(*exc)

    async def post(self, body: bytes) -> tuple[int, str, str | None]:
        """Status code, response text and Retry-After header; raises httpx.HTTPError subclasses."""
        request = httpx.Request("POST", self.url, headers=self.headers, content=body,
                                extensions={"timeout": self.timeout})
        response = await self.transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response.status_code, response.text, response.headers.get("retry-after")


class _RateLimiter:
    def __init__(self, per_second: float):
        self.interval = 1.0 / per_second if per_second and per_second > 0 else 0.0
        self.next = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        loop = asyncio.get_running_loop()
        async with self.lock:
            now = loop.time()
            start = max(now, self.next)
            self.next = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ChatRater:
    """Rates people through an OpenAI-compatible chat-completions endpoint.

    Args:
        config: Endpoint, model and client settings.
        template: The prompt texts (``system``, ``user``, ``repair``).
    """

    kind = "chat"

    def __init__(self, config: ChatConfig, template: Mapping[str, str]):
        self.config = config
        self.template = dict(template)
        self._secret_values: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.config.name

    def api_key(self) -> str | None:
        env = self.config.api_key_env
        if not env:
            return None
        if _secrets.looks_like_key(env):
            raise RaterConfigError(f"rater '{self.name}': api_key_env must name an environment variable, got a "
                                   "value that looks like a key")
        value = os.environ.get(env)
        if not value:
            raise RaterConfigError(f"rater '{self.name}': environment variable {env} (api_key_env) is not set")
        return value

    def secrets(self, api_key: str | None) -> tuple[str, ...]:
        """Strings never to store or log: the key, and key-like values in base_url and headers."""
        found = _secrets.secret_values({"base_url": self.config.base_url, "headers": self.config.headers})
        return tuple(sorted({*found, *([api_key] if api_key else [])}, key=len, reverse=True))

    def _clean(self, text: str | None) -> str | None:
        return None if text is None else _secrets.redact_text(text, self._secret_values)

    def key_for(self, task: Task) -> str:
        return request_key({
            "rater": self.name, "model": self.config.model, "format": task.fmt.name,
            "messages": task.messages, "params": self.config.params(), "repeat": task.repeat,
        })

    # ------------------------------------------------------------------ running

    def run(self, tasks: Sequence[Task], store: RequestStore, *, progress: bool = True) -> list[Outcome]:
        """Answers every task (from the store where possible); returns outcomes in task order."""
        secret = self.api_key()
        self._secret_values = self.secrets(secret)
        if self._secret_values:
            store._redact = tuple(sorted({*store._redact, *self._secret_values}, key=len, reverse=True))
        return asyncio.run(self._run_all(list(tasks), store, secret, progress))

    async def _run_all(self, tasks: list[Task], store: RequestStore, secret: str | None, progress: bool) -> list[Outcome]:
        cfg = self.config
        counts: collections.Counter[str] = collections.Counter()
        limiter = _RateLimiter(cfg.rate_limit_per_s)
        headers = {**cfg.headers, "Content-Type": "application/json"}
        if secret:
            headers["Authorization"] = f"Bearer {secret}"
        base_url = cfg.base_url.rstrip("/") + "/"
        bar = tqdm(total=len(tasks), desc=f"rater {self.name}", disable=not progress, leave=False)

        def tick(outcome: Outcome) -> Outcome:
            counts["cached" if outcome.cached else "done"] += 1
            if outcome.status != "ok":
                counts["failed" if outcome.status == "failed" else outcome.status] += 1
            bar.update(1)
            bar.set_postfix(done=counts["done"], cached=counts["cached"], failed=counts["failed"],
                            refused=counts["refused"], invalid=counts["invalid"], refresh=False)
            return outcome

        outcomes: list[Outcome | None] = [None] * len(tasks)
        answered, failed = [0], [0]  # across workers: stop early when nothing ever succeeds
        abort_after = int(cfg.abort_after_failures)
        tls = ssl.create_default_context(cafile=certifi.where())  # one context for all workers (loading is slow)
        queue = iter(enumerate(tasks))  # shared by the workers; next() never yields to the loop

        async def worker() -> None:
            # One keep-alive connection per worker: max_concurrency workers give max_concurrency
            # requests in flight, without a shared pool to scan on every request.
            async with _Endpoint(base_url + "chat/completions", headers, cfg.timeout_s, tls) as client:
                for index, task in queue:
                    key = self.key_for(task)
                    cached = store.get(key)
                    if cached and (cached["status"] in FINAL_STATUSES
                                   or (cached["status"] == "failed" and not cfg.retry_failed)):
                        outcomes[index] = tick(_outcome(task, cached, cached=True))
                    elif abort_after and not answered[0] and failed[0] >= abort_after:
                        outcomes[index] = tick(Outcome(
                            task.person_id, task.fmt.name, task.repeat, "failed",
                            error=f"not sent: the first {failed[0]} requests failed and none was answered"))
                    else:
                        outcome = await self._rate(client, limiter, task, key, store)
                        answered[0] += outcome.status == "ok"
                        failed[0] += outcome.status == "failed"
                        outcomes[index] = tick(outcome)

        try:
            await asyncio.gather(*(worker() for _ in range(max(1, int(cfg.max_concurrency)))))
        finally:
            bar.close()
        log.info("rater %s: %d requests: %d sent, %d from the store, %d failed, %d refused, %d invalid",
                 self.name, len(tasks), counts["done"], counts["cached"], counts["failed"], counts["refused"],
                 counts["invalid"])
        problems = [o for o in outcomes if o.status != "ok" and not o.cached]
        for outcome in problems[:3]:
            log.warning("rater %s, person %s, %s: %s: %s", self.name, outcome.person_id, outcome.format,
                        outcome.status, self._clean(store._clean(outcome.error)))
        if len(problems) > 3:
            log.warning("rater %s: %d more requests were not answered; see %s", self.name, len(problems) - 3, store.path)
        return list(outcomes)

    async def _rate(self, client: _Endpoint, limiter: _RateLimiter, task: Task, key: str,
                    store: RequestStore) -> Outcome:
        cfg = self.config
        meta = {"rater": self.name, "model": cfg.model, "format": task.fmt.name, "person_id": task.person_id,
                "repeat": task.repeat}
        store.start(key, meta, {"model": cfg.model, "messages": task.messages, **cfg.params()})
        body, error, attempts = await self._post(client, limiter, key, task.messages, store, "call")
        if body is None:
            return self._finish(store, key, task, "failed", error=error, attempts=attempts)
        try:
            return self._finish(store, key, task, "ok", parsed=_parse(body, task.fmt), attempts=attempts)
        except Refusal as err:
            return self._finish(store, key, task, "refused", error=str(err), attempts=attempts)
        except AnswerError as err:
            first_error = str(err)
        if not cfg.repair:
            return self._finish(store, key, task, "invalid", error=first_error, attempts=attempts)
        messages = [*task.messages, {"role": "assistant", "content": _content(body) or ""},
                    repair_message(self.template, task.fmt, first_error)]
        body, error, more = await self._post(client, limiter, key, messages, store, "repair")
        attempts += more
        if body is None:
            return self._finish(store, key, task, "failed", error=f"{first_error}; repair request failed: {error}",
                                attempts=attempts)
        try:
            return self._finish(store, key, task, "ok", parsed=_parse(body, task.fmt), attempts=attempts)
        except Refusal as err:
            return self._finish(store, key, task, "refused", error=str(err), attempts=attempts)
        except AnswerError as err:
            return self._finish(store, key, task, "invalid", error=f"{first_error}; after repair: {err}",
                                attempts=attempts)

    def _finish(self, store: RequestStore, key: str, task: Task, status: str, *, parsed: ParsedAnswer | None = None,
                error: str | None = None, attempts: int = 0) -> Outcome:
        result = None if parsed is None else {"scores": parsed.scores, "descriptions": parsed.descriptions}
        store.finish(key, status, result=result, error=error, attempts=attempts)
        if status != "ok":
            log.debug("rater %s, person %s, %s: %s: %s", self.name, task.person_id, task.fmt.name, status,
                      self._clean(store._clean(error)))
        return _outcome(task, {"status": status, "result": result, "error": self._clean(store._clean(error))},
                        cached=False)

    async def _post(self, client: _Endpoint, limiter: _RateLimiter, key: str, messages: list[dict[str, str]],
                    store: RequestStore, kind: str) -> tuple[dict[str, Any] | None, str | None, int]:
        """POSTs with retries; returns (response JSON or None, error, attempts)."""
        cfg = self.config
        payload = json.dumps({"model": cfg.model, "messages": messages, **cfg.params()}).encode()
        reason = "no attempt"
        attempt = 0
        for attempt in range(int(cfg.max_retries) + 1):
            await limiter.wait()
            retry_after = None
            start = time.perf_counter()
            try:
                code, text, retry_header = await client.post(payload)
            except httpx.TimeoutException:
                reason = f"timeout after {cfg.timeout_s:g} s"
                store.exchange(key, kind, None, None, reason, time.perf_counter() - start)
            except httpx.HTTPError as err:
                reason = f"{type(err).__name__}: {err}"
                store.exchange(key, kind, None, None, reason, time.perf_counter() - start)
            else:
                store.exchange(key, kind, code, text, None, time.perf_counter() - start)
                if code == 200:
                    try:
                        body = json.loads(text)
                        _content(body, strict=True)
                        return body, None, attempt + 1
                    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
                        reason = f"malformed response body ({type(err).__name__})"
                elif code == 429 or code >= 500:
                    reason = f"HTTP {code}"
                    retry_after = parse_retry_after(retry_header)
                else:
                    return None, self._clean(store._clean(f"HTTP {code}: {text[:300]}")), attempt + 1
            if attempt == cfg.max_retries:
                break
            await asyncio.sleep(self._delay(attempt, retry_after))
        return None, self._clean(store._clean(f"{reason} (gave up after {attempt + 1} attempts)")), attempt + 1

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with equal jitter; at least ``Retry-After`` when the server sent one."""
        cap = min(float(self.config.backoff_max_s), float(self.config.backoff_base_s) * 2.0**attempt)
        delay = cap / 2 + random.uniform(0, cap / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, float(self.config.retry_after_max_s)))
        return delay


def require_answers(rater: str, outcomes: Sequence[Outcome]) -> None:
    """Raises when a rater answered none of its requests, quoting the server's commonest message.

    Partial failures stay warnings (logged by :meth:`ChatRater.run`); a rater with
    no answer at all would give only missing scores, which is a failure.

    Raises:
        RaterFailedError: No outcome has status ok.

    Example:
        >>> require_answers("r", [])  # nothing asked, nothing missing
    """
    if not outcomes or any(o.status == "ok" for o in outcomes):
        return
    counts = collections.Counter(o.status for o in outcomes)
    errors = collections.Counter(o.error for o in outcomes if o.error and not o.error.startswith("not sent:"))
    said = errors.most_common(1)[0][0] if errors else "no error text"
    raise RaterFailedError(
        f"rater '{rater}' answered none of its {len(outcomes)} requests "
        f"({', '.join(f'{n} {status}' for status, n in counts.most_common())}); the server said: {said}"
    )


def _content(body: Mapping[str, Any], strict: bool = False) -> str | None:
    message = body["choices"][0]["message"]
    if strict and not isinstance(message, dict):
        raise TypeError("message is not an object")
    return message.get("content")


def _parse(body: Mapping[str, Any], fmt: PromptFormat) -> ParsedAnswer:
    choice = body["choices"][0]
    message = choice["message"]
    return parse_answer(message.get("content"), fmt, refusal=message.get("refusal"),
                        finish_reason=choice.get("finish_reason"))


def _outcome(task: Task, row: Mapping[str, Any], *, cached: bool) -> Outcome:
    result = row.get("result") or {}
    return Outcome(person_id=task.person_id, format=task.fmt.name, repeat=task.repeat, status=row["status"],
                   scores=result.get("scores"), descriptions=result.get("descriptions"), error=row.get("error"),
                   cached=cached)
