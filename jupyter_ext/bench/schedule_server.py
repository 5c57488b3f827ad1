"""A fake OpenAI-compatible server that streams tokens on a known schedule.

Used to measure the harness itself: every request gets its first token `ttft_ms` after the
server read it and one token every `itl_ms` after that, each sent at an absolute deadline
(no drift from accumulated sleeps). A client's TTFT/ITL error is then its measured value
minus the schedule. It can also fail requests (`--fail-every N`) or exit abruptly after N
requests (`--die-after N`) to test how a sweep handles failures. For the integrity checks
it can export vLLM's prefix-cache counters at /metrics with a given hit rate
(`--prefix-hit-rate 0.9`) and answer every Nth request with half its tokens, as a server
that ignores ignore_eos would (`--short-every N`). `--adapters a,b` lists LoRA adapter names
in /v1/models beside the model, as vLLM does for its --lora-modules. With `--stamp` each token's
text is ` i:T0:TW`: the monotonic time the server read the request (T0) and wrote the token (TW),
so a client can split its measured error into the server's part and its own (the clock is
CLOCK_MONOTONIC, one for every process of the machine). Its event loop wakes for a token's
deadline to the microsecond (`eventloop.precise_loop`), not to the millisecond epoll rounds to.

    python -m jupyter_ext.bench.schedule_server --port 8123 --ttft-ms 50 --itl-ms 10
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import time


@functools.lru_cache(maxsize=8192)
def _chunk(i: int, chat: bool, model: str) -> bytes:
    """Pre-built event bytes: the server's own cost per token stays small and constant."""
    choice = {"index": 0, "delta": {"content": f" t{i}"}} if chat else {"index": 0, "text": f" t{i}"}
    return b"data: " + json.dumps({"object": "chunk", "model": model, "choices": [choice]}).encode() + b"\n\n"


def _text(content) -> str:
    """A message's text: a string, or (as vLLM's benchmark client sends) a list of parts."""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def _stamped(i: int, chat: bool, model: str, t0: float) -> bytes:
    """An event whose text carries the request's read time and this token's write time."""
    piece = f" {i}:{t0:.7f}:{time.perf_counter():.7f}"
    choice = {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
    return b"data: " + json.dumps({"object": "chunk", "model": model, "choices": [choice]}).encode() + b"\n\n"


def make_app(ttft_ms: float, itl_ms: float, fail_every: int = 0, die_after: int = 0, model: str = "schedule",
             prefix_hit_rate: float | None = None, short_every: int = 0, adapters: tuple[str, ...] = (),
             stamp: bool = False):
    from aiohttp import web

    state = {"n": 0, "late_s": [], "prompt_tokens": 0}

    async def completions(request: web.Request) -> web.StreamResponse:
        t0 = time.perf_counter()
        body = await request.json()
        state["n"] += 1
        n = state["n"]
        if die_after and n > die_after:
            os._exit(3)  # an abrupt crash, as a dying engine would
        if fail_every and n % fail_every == 0:
            return web.json_response({"error": {"message": "injected failure"}}, status=500)
        chat = request.path.endswith("chat/completions")
        # vLLM's own benchmark client asks with the chat API's newer name
        max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or 16)
        if short_every and n % short_every == 0:
            max_tokens = max(1, max_tokens // 2)
        # about 4 characters a token, as the workload estimates without a tokenizer
        text = body.get("prompt") or "".join(_text(m.get("content", "")) for m in body.get("messages", []))
        prompt_tokens = max(1, len(str(text)) // 4)
        state["prompt_tokens"] += prompt_tokens
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(max_tokens):
            due = t0 + ttft_ms / 1e3 + i * itl_ms / 1e3
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            state["late_s"].append(time.perf_counter() - due)
            await resp.write(_stamped(i, chat, model, t0) if stamp else _chunk(i, chat, model))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": max_tokens,
                 "total_tokens": prompt_tokens + max_tokens}
        await resp.write(b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def models(_request: web.Request) -> web.Response:
        # LoRA adapters are listed after the base model, as vLLM lists its --lora-modules
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model"} for m in (model, *adapters)]})

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def lateness(_request: web.Request) -> web.Response:
        """How late the server itself sent tokens (its own error, to subtract from the client's)."""
        late = sorted(state["late_s"])
        if _request.query.get("reset"):
            state["late_s"] = []
        p = (lambda q: late[min(len(late) - 1, int(q * len(late)))] if late else 0.0)
        return web.json_response({"count": len(late), "p50_s": p(0.5), "p99_s": p(0.99), "max_s": late[-1] if late else 0})

    async def stats(_request: web.Request) -> web.Response:
        """How many completion requests reached the server (a harness that loses none counts as many)."""
        return web.json_response({"received": state["n"]})

    async def metrics(_request: web.Request) -> web.Response:
        q = state["prompt_tokens"]
        return web.Response(text=f"# TYPE vllm:prefix_cache_queries counter\n"
                                 f'vllm:prefix_cache_queries_total{{engine="0"}} {float(q)}\n'
                                 f'vllm:prefix_cache_hits_total{{engine="0"}} {float(q * prefix_hit_rate)}\n')

    app = web.Application()
    if prefix_hit_rate is not None:
        app.router.add_get("/metrics", metrics)
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/lateness", lateness)
    app.router.add_get("/stats", stats)
    return app


def schedule_arguments(description: str | None) -> argparse.ArgumentParser:
    """The options every schedule stand-in takes (this one and schedule_server_lean)."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ttft-ms", type=float, default=50.0)
    ap.add_argument("--itl-ms", type=float, default=10.0)
    return ap


def main() -> None:
    from aiohttp import web

    ap = schedule_arguments(__doc__)
    ap.add_argument("--fail-every", type=int, default=0)
    ap.add_argument("--die-after", type=int, default=0)
    ap.add_argument("--prefix-hit-rate", type=float, default=None)
    ap.add_argument("--short-every", type=int, default=0)
    ap.add_argument("--adapters", default="", help="comma-separated LoRA adapter names /v1/models lists too")
    ap.add_argument("--stamp", action="store_true", help="tokens carry the server's read and write times")
    a = ap.parse_args()
    from .eventloop import precise_loop

    web.run_app(make_app(a.ttft_ms, a.itl_ms, a.fail_every, a.die_after, prefix_hit_rate=a.prefix_hit_rate,
                         short_every=a.short_every, adapters=tuple(n for n in a.adapters.split(",") if n),
                         stamp=a.stamp), host=a.host, port=a.port,
                print=None, access_log=None, backlog=4096,
                loop=precise_loop())


if __name__ == "__main__":
    main()
