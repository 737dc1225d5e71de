"""Any OpenAI-compatible server behind the `Generator` interface (/v1/chat/completions, /v1/completions).

Callers: `make_generator` for `inference.engine: http`, the distillation stage's teacher (DeepSeek API,
an in-cluster vLLM/SGLang service), the LLM-judge PRM.

How it behaves:
- asyncio + httpx on an event loop of its own in a background thread, so the synchronous `generate`
  also works when called from code that already runs an event loop; Completions are yielded as they
  finish, in any order, each prompt index exactly once.
- Continuous dispatch: a slot freed by an answer takes the next prompt at once, never waiting for the
  rest of a batch. `stream` takes prompts from any iterable, also one the caller keeps feeding while it
  consumes answers (the distillation stage's follow-up rounds), and yields what is ready in batches.
- Each Completion carries its own prompt's usage (requests, retries, failures, tokens), beside the
  generator's running totals, so a stage can store it with the record it writes.
- At most `endpoint.concurrency` requests in flight (a semaphore; a request waiting out a backoff holds
  no slot); requests-per-minute and tokens-per-minute token buckets (tokens estimated from the prompt
  length and max_tokens x n, then corrected by the usage the server reports).
- Retries with exponential backoff and full jitter, never earlier than a Retry-After header, on 408,
  429, 5xx, timeouts (`endpoint.timeout_seconds` per attempt, the whole exchange), connection errors,
  malformed JSON and empty choices, up to `endpoint.max_retries` retries. Other 4xx are not retried.
  A request that fails for good becomes samples with finish_reason "error" and the reason.
- `n`: sent to the server; when it returns fewer choices (servers without n support) the rest is asked
  for in further requests with shifted seeds, so a Completion always holds exactly n samples.
- `reasoning_content` (DeepSeek, vLLM reasoning parsers; newer vLLM calls it `reasoning`) goes to
  Sample.reasoning.
- The API key comes from the environment variable of `endpoint.apiKey` (`SecretRef.env_var`) and is
  sent as a Bearer token. It is never logged, and any text that could carry it (error bodies echoed by
  a server) is scrubbed before it reaches a Sample, the usage counter or the log.

Limits: per-sample completion tokens of an n>1 response are the server's total split in proportion to
text length (the API reports one total); rate limits are per process (see ratelimit).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import httpx

from adacot.api.generation import Endpoint, SamplingSpec
from adacot.backends.base import Completion, FinishReason, Prompt, Sample, UsageCounter
from adacot.backends.ratelimit import Backoff, RateLimiter, parse_retry_after

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


class AttemptError(Exception):
    """One attempt failed; `retryable` decides whether another is made."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable, self.retry_after = retryable, retry_after


class _LoopThread:
    """An event loop running forever in a daemon thread; coroutines are submitted from any thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="adacot-http", daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class OpenAIGenerator:
    """Generates through an OpenAI-compatible endpoint; see the module docstring for the policies."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        backoff: Backoff | None = None,
        rng_seed: int | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.usage = UsageCounter()
        self._api_key = _api_key(endpoint)
        self._backoff = backoff or Backoff()
        self._rng = random.Random(rng_seed)
        self._transport = transport
        self._loop = _LoopThread()
        self._loop.submit(self._setup()).result()

    async def _setup(self) -> None:
        # Created on the loop's own thread: asyncio primitives and the client belong to that loop.
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.endpoint.url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(self.endpoint.timeout_seconds),
            limits=httpx.Limits(max_connections=self.endpoint.concurrency),
            transport=self._transport,
        )
        self._slots = asyncio.Semaphore(self.endpoint.concurrency)
        self._limiter = RateLimiter(self.endpoint.requests_per_minute, self.endpoint.tokens_per_minute)

    # -- the synchronous face ------------------------------------------------------------------------

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingSpec) -> Iterator[Completion]:
        for ready in self.stream(prompts, sampling):
            yield from ready

    def stream(self, prompts: Iterable[Prompt], sampling: SamplingSpec) -> Iterator[list[Completion]]:
        """See `StreamingGenerator.stream`; a plain sequence is read on the loop, any other iterable in
        a helper thread (it may block until its feeder adds a prompt)."""
        results: queue.Queue[Completion | BaseException | None] = queue.Queue()
        future = self._loop.submit(self._run(prompts, sampling, results.put))
        try:
            finished = False
            while not finished:
                ready: list[Completion] = []
                item = results.get()
                while True:
                    if isinstance(item, BaseException):
                        raise item
                    if item is None:  # the end: every prompt taken and answered
                        finished = True
                        break
                    ready.append(item)
                    try:
                        item = results.get_nowait()
                    except queue.Empty:
                        break
                if ready:
                    yield ready
            future.result()
        finally:
            future.cancel()  # the caller stopped early (or we failed): abandon what is in flight

    def close(self) -> None:
        if self._loop.loop.is_closed():
            return
        self._loop.submit(self._client.aclose()).result()
        self._loop.stop()

    def __enter__(self) -> OpenAIGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one prompt ----------------------------------------------------------------------------------

    async def _run(
        self,
        prompts: Iterable[Prompt],
        sampling: SamplingSpec,
        emit: Callable[[Completion | BaseException | None], None],
    ) -> None:
        take = _taker(prompts)

        async def worker() -> None:
            # Each worker takes the next prompt as soon as its own is answered: no batch barrier.
            while (taken := await take()) is not None:
                emit(await self._complete(*taken, sampling))

        try:
            workers = 2 * self.endpoint.concurrency
            if isinstance(prompts, Sequence):
                workers = min(len(prompts), workers)
            await asyncio.gather(*(worker() for _ in range(workers)))
        except BaseException as exc:  # a bug, not a request failure: surface it in the caller's thread
            emit(exc)
            raise
        emit(None)

    async def _complete(self, index: int, prompt: Prompt, sampling: SamplingSpec) -> Completion:
        seed = sampling.seed if prompt.seed is None else prompt.seed
        samples: list[Sample] = []
        mine = UsageCounter()  # this prompt's share of self.usage
        while len(samples) < sampling.samples_per_question:
            want = sampling.samples_per_question - len(samples)
            try:
                got = await self._request(
                    index, _payload(self.endpoint, prompt, sampling, want, seed + len(samples)), mine
                )
            except AttemptError as exc:
                _bump((self.usage, mine), failures=1)
                failed = Sample(text="", finish_reason="error", error=self._scrub(str(exc)))
                samples.extend([failed] * want)
                break
            samples.extend(got[:want])
        return Completion(index=index, samples=tuple(samples), usage=mine)

    async def _request(self, index: int, payload: dict[str, Any], mine: UsageCounter) -> list[Sample]:
        """One logical request with its retries; raises AttemptError when it fails for good."""
        estimate = _estimate_tokens(payload)
        for attempt in range(self.endpoint.max_retries + 1):
            await self._limiter.acquire(estimate)
            try:
                return await self._attempt(payload, estimate, mine)
            except AttemptError as exc:
                self._limiter.correct_tokens(estimate, 0)
                if not exc.retryable or attempt == self.endpoint.max_retries:
                    raise AttemptError(f"{exc} (after {attempt + 1} attempts)", retryable=False) from None
                delay = self._backoff.delay(attempt, self._rng, exc.retry_after)
                _bump((self.usage, mine), retries=1)
                log.warning(
                    "prompt %d: %s; retry %d in %.2fs", index, self._scrub(str(exc)), attempt + 1, delay
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, payload: dict[str, Any], estimate: int, mine: UsageCounter) -> list[Sample]:
        path = "/chat/completions" if "messages" in payload else "/completions"
        async with self._slots:
            began = time.monotonic()
            _bump((self.usage, mine), requests=1)
            data = await self._post(path, payload)
            latency = time.monotonic() - began
        samples, usage = _parse_response(
            data, chat="messages" in payload, max_tokens=int(payload["max_tokens"]), latency=latency
        )
        _bump((self.usage, mine), prompt_tokens=usage[0], completion_tokens=usage[1])
        self._limiter.correct_tokens(estimate, sum(usage))
        return samples

    async def _post(self, path: str, payload: dict[str, Any]) -> Any:
        timeout = self.endpoint.timeout_seconds
        try:
            response = await asyncio.wait_for(self._client.post(path, json=payload), timeout)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise AttemptError(f"no answer within the {timeout:g}s timeout", retryable=True) from None
        except httpx.TransportError as exc:
            raise AttemptError(f"connection error: {type(exc).__name__}: {exc}", retryable=True) from None
        status = response.status_code
        if status >= 400:
            message = f"HTTP {status}: {response.text[:300]}"
            retryable = status in RETRYABLE_STATUS or status >= 500
            raise AttemptError(
                message,
                retryable=retryable,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        try:
            return response.json()
        except ValueError:
            raise AttemptError(
                f"malformed JSON in the response: {response.text[:120]!r}", retryable=True
            ) from None

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text


# -- pure helpers ------------------------------------------------------------------------------------


def _bump(counters: Sequence[UsageCounter], **amounts: int) -> None:
    """Add the same amounts to the totals and to one prompt's counter."""
    for counter in counters:
        for name, amount in amounts.items():
            setattr(counter, name, getattr(counter, name) + amount)


def _taker(prompts: Iterable[Prompt]) -> Callable[[], Coroutine[Any, Any, tuple[int, Prompt] | None]]:
    """An awaitable `take()` shared by the workers: the next (index, prompt), or None when exhausted.
    A sequence is read on the loop. Any other iterable may block until its feeder adds a prompt, and the
    loop must keep serving answers meanwhile: a pump thread reads it into an asyncio queue, so a worker
    whose answer came takes the next prompt on the loop, without a thread hop when one is waiting."""
    source = iter(enumerate(prompts))
    if isinstance(prompts, Sequence):

        async def take_now() -> tuple[int, Prompt] | None:
            return next(source, None)

        return take_now
    loop = asyncio.get_running_loop()
    queued: asyncio.Queue[tuple[int, Prompt] | None] = asyncio.Queue()

    def pump() -> None:
        try:
            for item in source:
                loop.call_soon_threadsafe(queued.put_nowait, item)
        finally:
            loop.call_soon_threadsafe(queued.put_nowait, None)

    threading.Thread(target=pump, name="adacot-http-feed", daemon=True).start()

    async def take() -> tuple[int, Prompt] | None:
        item = await queued.get()
        if item is None:
            queued.put_nowait(None)  # the end, for every other worker too
        return item

    return take


def _api_key(endpoint: Endpoint) -> str | None:
    if endpoint.api_key is None:
        return None
    value = os.environ.get(endpoint.api_key.env_var, "")
    if not value:
        ref = endpoint.api_key
        raise ValueError(
            f"endpoint.apiKey: environment variable {ref.env_var} (Secret {ref.name}/{ref.key}) is not set"
        )
    return value


def _payload(endpoint: Endpoint, prompt: Prompt, sampling: SamplingSpec, n: int, seed: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": endpoint.model,
        "n": n,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_tokens": sampling.max_tokens,
        "seed": seed,
    }
    if sampling.top_k is not None:
        body["top_k"] = sampling.top_k  # an extension vLLM and SGLang accept
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    if endpoint.api == "chat":
        turns = prompt.messages or (("user", prompt.text or ""),)
        body["messages"] = [{"role": role, "content": content} for role, content in turns]
    else:
        body["prompt"] = (
            prompt.text if prompt.text is not None else "\n\n".join(c for _, c in prompt.messages)
        )
    return body


def _estimate_tokens(payload: dict[str, Any]) -> int:
    """Rough cost before the server tells: ~4 characters a token for the prompt, plus the full budget."""
    prompt = payload.get("messages") or payload.get("prompt") or ""
    return len(json.dumps(prompt)) // 4 + int(payload["n"]) * int(payload["max_tokens"])


def _parse_response(
    data: Any, *, chat: bool, max_tokens: int, latency: float
) -> tuple[list[Sample], tuple[int, int]]:
    """Samples (ordered by choice index) and (prompt_tokens, completion_tokens) from a response body."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        raise AttemptError("the response has no choices", retryable=True)
    try:
        ordered = sorted(choices, key=lambda c: int(c.get("index", 0)))
        texts = [_choice_text(c, chat) for c in ordered]
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        raise AttemptError(f"unexpected response shape: {exc}", retryable=True) from None
    usage = data.get("usage") or {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    reasons = [_finish_reason(choice.get("finish_reason")) for choice in ordered]
    fixed = [max_tokens if r == "length" else None for r in reasons]
    shares = split_tokens(int(usage.get("completion_tokens") or 0), [len(t) for t, _ in texts], fixed)
    samples = [
        Sample(
            text=text,
            finish_reason=reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=share,
            reasoning=reasoning,
            latency_s=latency,
        )
        for reason, (text, reasoning), share in zip(reasons, texts, shares, strict=True)
    ]
    return samples, (prompt_tokens, sum(shares))


def _choice_text(choice: dict[str, Any], chat: bool) -> tuple[str, str | None]:
    if not chat:
        return str(choice["text"]), None
    message = choice["message"]
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    return str(message.get("content") or ""), reasoning


def _finish_reason(value: object) -> FinishReason:
    return "length" if value in ("length", "max_tokens") else "stop"


def split_tokens(total: int, weights: list[int], fixed: list[int | None]) -> list[int]:
    """The server's completion-token total of an n>1 response, per choice: a choice cut by max_tokens
    used exactly max_tokens (its `fixed` value); the rest is split in proportion to text length (evenly
    when all are empty), in integers that sum to `total`. Falls back to proportional when the fixed
    parts do not fit (a choice cut by the context, not by max_tokens)."""
    if len(weights) == 1:
        return [total]
    known = sum(f for f in fixed if f is not None)
    if known > total or (known < total and all(f is not None for f in fixed)):
        fixed = [None] * len(weights)
        known = 0
    free = [i for i, f in enumerate(fixed) if f is None]
    shares = [f or 0 for f in fixed]
    rest = total - known
    scale = [weights[i] for i in free] if any(weights[i] for i in free) else [1] * len(free)
    for i, w in zip(free, scale, strict=True):
        shares[i] = rest * w // sum(scale)
    for k in range(rest - sum(shares[i] for i in free)):
        shares[free[k % len(free)]] += 1
    return shares
