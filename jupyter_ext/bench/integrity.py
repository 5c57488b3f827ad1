"""Checks that a measured figure means what it says, as peers learned the hard way.

  * Prefix-cache hygiene: a warm prefix cache inflates throughput (up to 86% in a vLLM issue
    on repeated seeded runs). Every level and repeat sends prompts no earlier level or
    warm-up sent (`SweepSpec.block`), and the server's own counters say what it reused:
        prefix_cache_hit_rate = delta vllm:prefix_cache_hits_total
                                / delta vllm:prefix_cache_queries_total     (tokens)
    Fresh prompts still share the system prompt and the chat template's first tokens, so
    the rate to expect is about shared_share = (system prompt chars / 4 + TEMPLATE_TOKENS)
    / mean input tokens (a few percent at the seed's 622 tokens, more for shrunken CI
    prompts); a rate above shared_share + PREFIX_HIT_WARN gets a WARNING note.
  * Token counts: with ignore_eos every answer must be exactly max_tokens long; a server
    that ignores ignore_eos (or stops early) makes per-token figures look better than they
    are, so each level counts the answers whose server-reported length differs.
  * Repeats: `--repeats N` runs every level N times; the 95% confidence interval of each
    figure across repeats is the Student t interval AIPerf reports:
        mean +- t(0.975, N-1) * s / sqrt(N),   s = sample standard deviation
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from .metrics import RequestSample, compute_metrics, per_model
from .spec_metrics import counter_sums

if TYPE_CHECKING:
    from .result import LevelResult

PREFIX_HIT_WARN = 0.25
TEMPLATE_TOKENS = 16  # chat-template tokens before the system prompt, and a cache block's rounding
PREFIX_COUNTERS = {"vllm:prefix_cache_queries_total": "queries", "vllm:prefix_cache_hits_total": "hits"}
# Two-sided 95% Student t quantiles t(0.975, df), df = 1..30; above 30 the normal's 1.96 is
# within 2% (no scipy needed for this one table).
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042)


@dataclass
class PrefixCounters:
    queries: float = 0.0
    hits: float = 0.0

    @classmethod
    def parse(cls, text: str | None) -> "PrefixCounters | None":
        """Sum the counters over their labels; None when the server exports neither."""
        sums = counter_sums(text, PREFIX_COUNTERS)
        if sums is None:
            return None
        return cls(**{PREFIX_COUNTERS[name]: value for name, value in sums.items()})


def prefix_hit_rate(before: str | None, after: str | None) -> float | None:
    """Share of prompt tokens the server found in its prefix cache during a level."""
    b, a = PrefixCounters.parse(before), PrefixCounters.parse(after)
    if b is None or a is None or a.queries - b.queries <= 0:
        return None
    return (a.hits - b.hits) / (a.queries - b.queries)


def token_count_check(samples: Sequence[RequestSample], max_tokens: int, ignore_eos: bool) -> dict[str, Any]:
    """How many successful answers' server-reported lengths differ from `max_tokens`."""
    ok = [s for s in samples if s.ok and s.usage_from_server and s.output_tokens is not None]
    off = [s.output_tokens for s in ok if s.output_tokens != max_tokens]
    return {"requested_tokens": max_tokens, "ignore_eos": ignore_eos, "checked": len(ok),
            "length_mismatches": len(off), "min_output_tokens": min(off, default=None)}


def shared_share(samples: Sequence[RequestSample], shared_prefix_chars: int) -> float:
    """The share of prompt tokens that every prompt shares (module docstring)."""
    tokens = [s.input_tokens for s in samples if s.ok and s.input_tokens]
    if not tokens:
        return 0.0
    return min(1.0, (shared_prefix_chars / 4 + TEMPLATE_TOKENS) / (sum(tokens) / len(tokens)))


def level_integrity(before: str | None, after: str | None, samples: Sequence[RequestSample],
                    max_tokens: int, ignore_eos: bool, shared_prefix_chars: int = 0) -> dict[str, Any]:
    return {"prefix_cache_hit_rate": prefix_hit_rate(before, after), "fresh_prompts": True,
            "expected_shared_share": shared_share(samples, shared_prefix_chars),
            "tokens": token_count_check(samples, max_tokens, ignore_eos)}


def integrity_warnings(level: "LevelResult") -> list[str]:
    """WARNING notes for a level whose figures may not mean what they say."""
    out: list[str] = []
    info = level.integrity or {}
    rate = info.get("prefix_cache_hit_rate")
    where = f"at concurrency {level.concurrency}"
    expected = info.get("expected_shared_share") or 0.0
    if rate is not None and info.get("fresh_prompts") and rate > expected + PREFIX_HIT_WARN:
        out.append(f"WARNING: the server's prefix-cache hit rate was {rate:.0%} {where} although every prompt "
                   f"was fresh (their shared system prompt explains about {expected:.0%}): another client is "
                   f"warming its cache, or prompts share long prefixes; throughput may be inflated")
    tok = info.get("tokens") or {}
    if tok.get("ignore_eos") and tok.get("length_mismatches"):
        out.append(f"WARNING: {tok['length_mismatches']} of {tok['checked']} answers {where} were not "
                   f"{tok['requested_tokens']} tokens long (shortest {tok['min_output_tokens']}) although "
                   f"ignore_eos was sent: the server may ignore it, so per-token figures are not comparable")
    return out


def t_interval(values: Sequence[float]) -> dict[str, float]:
    """Mean and the 95% Student t interval of `values` (half width NaN for one value)."""
    v = [x for x in values if x is not None and not math.isnan(x)]
    n = len(v)
    mean = sum(v) / n if n else float("nan")
    if n < 2:
        return {"n": n, "mean": mean, "half_width": float("nan"), "low": float("nan"), "high": float("nan")}
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
    t = T975[n - 2] if n - 1 <= len(T975) else 1.96
    hw = t * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "std": sd, "t": t, "half_width": hw, "low": mean - hw, "high": mean + hw}


REPEAT_FIGURES = {"output_throughput": lambda m: m.output_throughput,
                  "request_throughput": lambda m: m.request_throughput,
                  "ttft_p50_s": lambda m: m.ttft.p50, "tpot_p50_s": lambda m: m.tpot.p50,
                  "itl_p50_s": lambda m: m.itl.p50}


def merge_repeats(levels: Sequence["LevelResult"], max_failed_share: float = 0.5) -> "LevelResult":
    """One level from N repeats of it: metrics over all their measured requests (wall times
    added; cool-down requests kept as samples, left out of metrics), warm-up and cool-down
    counts added, failed if all of them together fail more than `max_failed_share`, each
    repeat's figures, and the 95% interval of each figure across repeats."""
    from .failures import level_failure
    from .result import LevelResult
    from .sagemaker_sessions import merged_sessions

    if len(levels) == 1:
        return levels[0]
    samples = [s for lv in levels for s in lv.samples]
    kept = [s for s in samples if not s.cooldown]
    first = levels[0]
    wall = sum(lv.metrics.duration_s for lv in levels)
    merged = LevelResult(concurrency=first.concurrency, samples=samples, request_rate=first.request_rate,
                         metrics=compute_metrics(kept, wall), per_adapter=per_model(kept, wall) or None,
                         speculative=first.speculative, kind=first.kind, arrival=first.arrival,
                         warmup_requests=sum(lv.warmup_requests for lv in levels),
                         warmup_failed=sum(lv.warmup_failed for lv in levels),
                         cooldown_excluded=sum(lv.cooldown_excluded for lv in levels),
                         failure=level_failure(samples, max_failed_share),
                         sessions=merged_sessions([lv.sessions for lv in levels]))
    runs = [{k: f(lv.metrics) for k, f in REPEAT_FIGURES.items()} for lv in levels]
    merged.repeats = {"n": len(levels), "runs": runs,
                      "ci95": {k: t_interval([r[k] for r in runs]) for k in REPEAT_FIGURES}}
    rates = [lv.integrity.get("prefix_cache_hit_rate") for lv in levels if lv.integrity]
    rates = [r for r in rates if r is not None]
    mismatches = sum((lv.integrity or {}).get("tokens", {}).get("length_mismatches", 0) for lv in levels)
    checked = sum((lv.integrity or {}).get("tokens", {}).get("checked", 0) for lv in levels)
    if first.integrity is not None:
        tok = dict(first.integrity.get("tokens", {}), length_mismatches=mismatches, checked=checked)
        merged.integrity = {**first.integrity, "prefix_cache_hit_rate": max(rates) if rates else None,
                            "tokens": tok, "per_repeat_prefix_cache_hit_rate": rates}
    return merged
