"""Speculative-decoding counters read from the vLLM server's Prometheus `/metrics`.

Per level we read the counters before and after and take the difference:
    acceptance_rate        = accepted draft tokens / proposed draft tokens
    mean_accepted_per_step = 1 + accepted draft tokens / drafting steps
(the 1 is the token the target model always produces in a verification step). A recipe
that asks for speculation but whose server proposed no draft tokens is flagged, never
passed off as a speed-up.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Iterable

from prometheus_client.parser import text_string_to_metric_families

# Sample names as exposed (a Counter "x" is exposed as "x_total"; its "x_created" sample
# and the per-position counter are other names and are not summed).
COUNTERS = {
    "vllm:spec_decode_num_drafts_total": "drafts",
    "vllm:spec_decode_num_draft_tokens_total": "draft_tokens",
    "vllm:spec_decode_num_accepted_tokens_total": "accepted_tokens",
}


@dataclass
class SpecCounters:
    drafts: float = 0.0
    draft_tokens: float = 0.0
    accepted_tokens: float = 0.0

    @classmethod
    def parse(cls, text: str) -> "SpecCounters | None":
        """Sum each counter over its labels; None when the server exports none of them.

        Raises ValueError on text that is not the Prometheus exposition format."""
        found, c = False, cls()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                field = COUNTERS.get(sample.name)
                if field is not None:
                    found = True
                    setattr(c, field, getattr(c, field) + sample.value)
        return c if found else None

    @staticmethod
    def delta(before: "SpecCounters", after: "SpecCounters") -> "SpecCounters":
        return SpecCounters(after.drafts - before.drafts, after.draft_tokens - before.draft_tokens,
                            after.accepted_tokens - before.accepted_tokens)

    def summary(self) -> dict:
        nan = float("nan")
        return {"drafts": self.drafts, "draft_tokens": self.draft_tokens, "accepted_tokens": self.accepted_tokens,
                "acceptance_rate": self.accepted_tokens / self.draft_tokens if self.draft_tokens else nan,
                "mean_accepted_per_step": 1 + self.accepted_tokens / self.drafts if self.drafts else nan,
                "active": self.draft_tokens > 0}


def scrape_metrics_text(base_url: str, timeout: float = 5.0) -> str | None:
    """The server's Prometheus /metrics text, or None when the endpoint has none."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/metrics", timeout=timeout) as r:
            return r.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None


def counter_sums(text: str | None, names: Iterable[str]) -> dict[str, float] | None:
    """Each named sample summed over its labels (prometheus_client's parser); None when the
    text is absent, is not the exposition format, or has none of the names."""
    if not text:
        return None
    wanted, sums = set(names), {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in wanted:
                    sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    except ValueError:
        return None
    return sums or None


def spec_counters_in(text: str | None) -> SpecCounters | None:
    """SpecCounters.parse that answers None for a page that is not Prometheus text."""
    try:
        return SpecCounters.parse(text) if text else None
    except ValueError:
        return None


def scrape_spec_counters(base_url: str, timeout: float = 5.0) -> SpecCounters | None:
    """Read the counters, or None when the endpoint has no vLLM /metrics."""
    return spec_counters_in(scrape_metrics_text(base_url, timeout))
