"""How the requests of one level are sent: a closed loop of `c` users, or an open loop of
arrivals at a request rate, each request timed by `client.stream_request`.

  * closed loop: `c` workers each send the next item as soon as their previous one ended
    (client queue time is zero by construction). An item is a conversation: one request
    for a single-turn workload, `turns` requests in a row for a multi-turn one, each later
    turn carrying the earlier prompts and the assistant's actual replies;
  * open loop: arrivals at `rate` req/s, Poisson (exponential gaps) or constant (evenly
    spaced), capped at `c` in flight; a request that waits for a free slot records that
    wait as its queue time, apart from TTFT.

A `Guard` watches every sample: the user's stop event, or a first request that failed in a
way no retry fixes (nothing listening, HTTP 4xx, no stream) before any request succeeded,
halts the level. A halted level sends nothing new, and every request already sent is waited
for and counted: none is lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from typing import Awaitable, Callable

from ..errors import BenchError, OptimizeError
from . import failures
from .client import Endpoint, new_session, stream_reply, stream_request
from .metrics import RequestSample
from .workload import Turn, Workload


class Guard:
    """Whether to stop sending: the stop event, or a fatal failure while nothing has worked yet.
    One per sweep, so a request that succeeded at an earlier level counts."""

    def __init__(self, endpoint: Endpoint, stop: threading.Event | None = None) -> None:
        self.stop = stop
        self.url = endpoint.url if endpoint.transport is None else endpoint.base_url
        self.model = endpoint.model
        self.fatal: BenchError | None = None
        self.any_ok = False

    def record(self, sample: RequestSample) -> None:
        if sample.ok:
            self.any_ok = True
        elif not self.any_ok and self.fatal is None:
            self.fatal = failures.fatal_error(sample, self.url, self.model)

    @property
    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    @property
    def halted(self) -> bool:
        return self.fatal is not None or self.stopped


Record = Callable[[RequestSample], None]
log = logging.getLogger(__name__)


Bodies = dict[int, bytes]


def first_bodies(endpoint: Endpoint, workload: Workload, items: list[int], max_tokens: int | None) -> Bodies:
    """The encoded first request of every item, built before the level sends anything: a
    body encoded while other streams are open would delay reading them."""
    out = {}
    for i in items:
        prompt = workload.prompts[i % len(workload)]
        out[i] = endpoint.payload(prompt, max_tokens or workload.tokens_for(prompt))
    return out


async def _conversation(session, endpoint: Endpoint, workload: Workload, i: int, max_tokens: int | None,
                        guard: Guard, record: Record, due_at: float | None = None, bodies: Bodies | None = None,
                        ) -> "Awaitable[None] | None":
    """Send prompt i (its body from `bodies` when built beforehand), then its follow-up turns
    (if any), each after the previous reply; each asks for `max_tokens`, or (None) the
    prompt's own output length (a dataset row's) or the workload's. With `endpoint.sessions`,
    a multi-turn conversation opens a sticky session first, sends every turn in it and closes
    it after the last (open and close are blocking calls, run on a worker thread; neither is
    inside any turn's timing, both are inside the level's wall time, as for a real client).
    A single request returns once its stream was read, with what is left to do (decode and
    record it) as an awaitable the caller runs after sending its next request (None for a
    conversation, which needs each reply's text for its next turn)."""
    prompt = workload.prompts[i % len(workload)]
    max_tokens = max_tokens or workload.tokens_for(prompt)
    follow = workload.followups[i % len(workload)] if workload.followups else []
    body = (bodies or {}).pop(i, None)
    if not follow:
        reply = await stream_reply(session, endpoint, prompt, max_tokens, due_at, payload=body)
        if reply.final:  # failed before any decoding: recorded now, so a fatal error halts at once
            record(reply.sample)
            return None
        return _record_decoded(reply, record)
    sessions = endpoint.sessions
    sid = None
    if sessions is not None:
        try:
            sid = await asyncio.to_thread(sessions.open)
        except Exception as exc:  # noqa: BLE001 - counted as the conversation's failed turns
            why = str(exc) if isinstance(exc, OptimizeError) else f"{type(exc).__name__}: {exc}"
            _not_sent(prompt, 0, len(follow), record, f"no session opened: {why}"[:400], failures.SESSION)
            return
    try:
        await _turns(session, endpoint, prompt, follow, max_tokens, guard, record, due_at, sid, body)
    finally:
        if sid is not None:
            try:
                await asyncio.to_thread(sessions.close, sid)
            except Exception as exc:  # noqa: BLE001 - counted by the sessions (close_failed) and logged
                log.warning("session %s was not closed: %s", sid, exc)


async def _turns(session, endpoint: Endpoint, prompt, follow: list[str], max_tokens: int, guard: Guard,
                 record: Record, due_at: float | None, sid: str | None, body: bytes | None = None) -> None:
    s = await stream_request(session, endpoint, prompt, max_tokens, due_at, session_id=sid, payload=body)
    record(s)
    history = [{"role": "user", "content": prompt.user}]
    for turn, question in enumerate(follow, 1):
        if not s.ok:  # the conversation cannot go on; its later turns are counted, not sent
            _not_sent(prompt, turn, len(follow), record, f"not sent: turn {turn - 1} of its conversation failed")
            return
        if guard.halted:
            return
        history = history + [{"role": "assistant", "content": s.text}]
        s = await stream_request(session, endpoint, Turn(prompt.index, prompt.system, history, question, prompt.model),
                                 max_tokens, session_id=sid)
        s.turn = turn
        record(s)
        history = history + [{"role": "user", "content": question}]


async def _record_decoded(reply, record: Record) -> None:
    record(await reply.finish())


def _not_sent(prompt, first: int, last: int, record: Record, why: str, kind: str = failures.NOT_SENT) -> None:
    """Count turns `first`..`last` of a conversation as failed without sending them."""
    for t in range(first, last + 1):
        record(RequestSample(prompt_index=prompt.index, ok=False, turn=t, error_kind=kind, error=why,
                             finished_at=time.perf_counter(), model=prompt.model))


async def _ramp_wait(delay_s: float, guard: Guard) -> None:
    """Sleep `delay_s`, in short steps so that a halt (Ctrl-C, the server gone) ends it."""
    until = time.perf_counter() + delay_s
    while not guard.halted and (left := until - time.perf_counter()) > 0:
        await asyncio.sleep(min(left, 0.05))


async def closed_loop(session, endpoint: Endpoint, workload: Workload, items: list[int], c: int,
                      max_tokens: int | None, guard: Guard, record: Record, ramp_up_s: float = 0.0) -> None:
    """`c` users, each sending its next request when its reply has arrived; user k starts
    k * ramp_up_s / c seconds after the first (all at once when 0)."""
    queue = list(reversed(items))
    bodies = first_bodies(endpoint, workload, items, max_tokens)
    decoding: list[asyncio.Future] = []
    users = min(c, len(items))

    async def worker(k: int) -> None:
        if ramp_up_s and k:
            await _ramp_wait(k * ramp_up_s / users, guard)
        while queue and not guard.halted:
            rest = await _conversation(session, endpoint, workload, queue.pop(), max_tokens, guard, record,
                                       bodies=bodies)
            if rest is not None:  # decoded while this user's next request is on its way
                decoding.append(asyncio.ensure_future(rest))

    try:
        await asyncio.gather(*(worker(k) for k in range(users)))
    finally:
        await asyncio.gather(*decoding)


def arrival_gaps(rate: float, arrival: str, n: int, seed: int) -> list[float]:
    """Seconds between consecutive arrivals: Exp(rate) for Poisson, 1/rate for constant."""
    if arrival == "constant":
        return [1.0 / rate] * n
    rng = random.Random(seed)
    return [rng.expovariate(rate) for _ in range(n)]


async def open_loop(session, endpoint: Endpoint, workload: Workload, items: list[int], c: int, rate: float,
                    arrival: str, seed: int, max_tokens: int | None, guard: Guard, record: Record) -> None:
    slots = asyncio.Semaphore(c)
    bodies = first_bodies(endpoint, workload, items, max_tokens)
    start = time.perf_counter()
    sending: set[asyncio.Task] = set()

    async def one(i: int, due_at: float) -> None:
        await asyncio.sleep(max(0.0, due_at - time.perf_counter()))
        rest = None
        async with slots:
            if guard.halted:
                return
            sending.add(asyncio.current_task())
            rest = await _conversation(session, endpoint, workload, i, max_tokens, guard, record, due_at, bodies)
        if rest is not None:  # the slot is free for the next arrival first
            await rest

    due, tasks = 0.0, []
    for i, gap in zip(items, arrival_gaps(rate, arrival, len(items), seed)):
        due += gap
        tasks.append(asyncio.ensure_future(one(i, start + due)))
    while not all(t.done() for t in tasks):
        if guard.halted:  # drop what was not sent yet; wait for what was
            for t in tasks:
                if t not in sending:
                    t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            break
        await asyncio.sleep(0.05)
    for t in tasks:  # a bug in a task must not pass silently
        if t.done() and not t.cancelled() and t.exception() is not None:
            raise t.exception()


async def run_level(endpoint: Endpoint, workload: Workload, c: int, n: int, warmup: int, guard: Guard,
                    request_rate: float | None = None, arrival: str = "poisson", seed: int = 0,
                    on_done: Record | None = None, block: tuple[list[int], list[int]] | None = None,
                    ramp_up_s: float = 0.0) -> tuple[list[RequestSample], list[RequestSample], float]:
    """Warm up (short requests), then measure one level: (measured samples, warm-up samples,
    the measured part's start on the monotonic clock). `n` counts requests; a multi-turn level
    sends whole conversations, so it is rounded up to a multiple of the turns. `block` gives
    the (warm-up, measured) prompt indices (`SweepSpec.block`: fresh ones for every level);
    a multi-turn level opens its conversations on the first measured ones. Without it the
    level sends the first prompts, warm-ups among them. `ramp_up_s` spreads the start of a
    closed-loop level's users (`closed_loop`); warm-ups start at once."""
    turns = 1 + (len(workload.followups[0]) if workload.followups else 0)
    samples: list[RequestSample] = []
    warm: list[RequestSample] = []

    def keep(into: list[RequestSample], report: Record | None) -> Record:
        def rec(s: RequestSample) -> None:
            into.append(s)
            guard.record(s)
            if report:
                report(s)
        return rec

    conversations = -(-n // turns)
    if block is None:
        block = ([i % conversations for i in range(warmup)], list(range(conversations)))
    warm_idx, items = block[0], block[1][:conversations]
    if endpoint.sessions is not None:  # a session's open and close block one thread each: one per user
        from concurrent.futures import ThreadPoolExecutor

        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max(1, c), "jupyter-optimize-sessions"))
    async with new_session(endpoint) as session:
        if warm_idx:
            await closed_loop(session, endpoint, _single(workload), warm_idx, c,
                              min(16, workload.max_tokens), guard, keep(warm, None))
        t0 = time.perf_counter()
        if guard.halted:
            return samples, warm, t0
        rec = keep(samples, on_done)
        if request_rate is None:
            await closed_loop(session, endpoint, workload, items, c, None, guard, rec, ramp_up_s)
        else:
            await open_loop(session, endpoint, workload, items, c, request_rate, arrival, seed,
                            None, guard, rec)
    return samples, warm, t0


def _single(workload: Workload) -> Workload:
    """The workload's first turns only (warm-up requests hold no conversation)."""
    return Workload(workload.prompts, workload.max_tokens, workload.description) if workload.followups else workload
