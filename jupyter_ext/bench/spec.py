"""What a benchmark is, as four typed values: `Target`, `Load`, `Workload` and `Pricing`.

Every face (CLI, magic, panel) and every script describes a benchmark with these values and
hands them, as one `BenchSpec`, to the one runner (`bench.run_spec` / `BackgroundBenchmark`).
The checks a user's input needs (a target to measure, levels >= 1, a known instance, a
discount in [0, 1)) are made here, once, when the value is built: before any server starts.
The defaults live here too; the faces' option table reads them from these fields.

`BenchSpec.of(**options)` is the one parser from flat options (the keywords of
`run_benchmark`, which are also the `dest` names of the option table) to the values, so a new
option is added in one place: a field here and a row in `verbs/table.py`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import defaults
from ..errors import BenchError

if TYPE_CHECKING:
    from ..recipes import Recipe
    from .client import Endpoint
    from .slo import SLO


@dataclass(frozen=True)
class Target:
    """What to measure: a recipe (its server is started, or a running one reused), any
    OpenAI-compatible `url`, a SageMaker endpoint, or a prebuilt client `endpoint`. With a
    recipe and a URL, the recipe only names what runs at that URL. `sessions` (SageMaker
    only) runs each multi-turn conversation in a sticky session of its own: opened with
    InvokeEndpoint SessionId=NEW_SESSION, every turn sent with the returned id, closed after
    the last turn (bench.sagemaker_sessions)."""

    recipe: "Recipe | None" = None
    url: str | None = None
    model: str | None = None                 # served model name at `url` (default: /v1/models)
    sagemaker_endpoint: str | None = None
    region: str | None = None
    endpoint: "Endpoint | None" = None       # a prebuilt client (e.g. bench.sagemaker_stream)
    api: str = "chat"
    tokenizer_path: str | Path | None = None  # sizes prompts in real tokens for a URL/endpoint
    ignore_eos: bool = True
    extra_body: dict | None = None
    sessions: bool = False                   # SageMaker: each multi-turn conversation in a sticky session

    def __post_init__(self) -> None:
        if isinstance(self.recipe, (str, Path)):
            from ..recipes import load_recipe

            object.__setattr__(self, "recipe", load_recipe(self.recipe))
        if self.recipe is None and self.url is None and self.sagemaker_endpoint is None and self.endpoint is None:
            raise BenchError("bench needs a recipe (e.g. baseline, or recipes/baseline.yaml), --url or "
                             "--sagemaker-endpoint")
        if self.url is not None and self.sagemaker_endpoint is not None:
            raise BenchError("give --url or --sagemaker-endpoint, not both")
        if self.api not in ("chat", "completions"):
            raise BenchError(f"api must be chat or completions (got {self.api!r})")

    @property
    def name(self) -> str:
        return self.recipe.name if self.recipe is not None else "endpoint"

    def client(self) -> "Endpoint | None":
        """The prebuilt client for a SageMaker endpoint (None for a recipe or a URL)."""
        if self.endpoint is not None or self.sagemaker_endpoint is None:
            return self.endpoint
        from .sagemaker_stream import sagemaker_endpoint

        return sagemaker_endpoint(self.sagemaker_endpoint, region=self.region, sessions=self.sessions)


@dataclass(frozen=True)
class Load:
    """How hard to push, and which requests count.

    Closed loop: `concurrency` levels, each a sweep level. Open loop: `request_rate` req/s
    with `arrival` "poisson" (exponential gaps) or "constant" (evenly spaced); one rate with
    several concurrencies sweeps the cap on in-flight requests, several rates are the levels
    (the highest concurrency then caps what is in flight). `sweep_rates=N` first measures the
    saturation throughput (closed loop at the highest concurrency), then N rates evenly up to
    it. `warmup` requests before each level and the last `cooldown` completions of it are
    left out of its metrics (and counted in the result). `ramp_up_s` starts a closed-loop
    level's users evenly over that many seconds instead of all at once (Locust's spawn rate,
    k6's ramping VUs): requests of equal length then stop finishing, and arriving, in lock-step
    waves. A level where more than
    `max_failed_share` of its requests failed is marked failed. `repeats` runs every level
    (a sweep's saturation level too) that many times, each on fresh prompts."""

    concurrency: tuple[int, ...] = tuple(defaults.DEFAULT_CONCURRENCY)
    num_prompts: int | None = None    # per level; None = 2 x concurrency, at least 4
    request_rate: "float | tuple[float, ...] | None" = None
    warmup: int | None = None         # per level; None = one per slot
    arrival: str = "poisson"
    sweep_rates: int | None = None
    cooldown: int = 0
    ramp_up_s: float = 0.0            # closed loop: start the users evenly over this many seconds
    max_failed_share: float = 0.5
    repeats: int = 1                  # runs of every level (fresh prompts each); >1 adds 95% intervals

    def __post_init__(self) -> None:
        object.__setattr__(self, "concurrency", tuple(self.concurrency))
        rate = self.request_rate
        if isinstance(rate, (list, tuple)):
            rate = tuple(float(r) for r in rate)
            object.__setattr__(self, "request_rate", rate[0] if len(rate) == 1 else rate)
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or self.repeats < 1:
            raise BenchError(f"repeats must be a whole number >= 1 (got {self.repeats!r})")
        self.sweep()  # raises BenchError naming the bad value

    @property
    def rates(self) -> list[float]:
        r = self.request_rate
        return [] if r is None else list(r) if isinstance(r, tuple) else [float(r)]

    def sweep(self, seed: int = 0, rows: int = 0) -> Any:
        """The sweep; without `num_prompts` a level sends at least `rows` requests (a
        dataset's rows, each once)."""
        from .sweep import SweepSpec

        return SweepSpec(concurrency=list(self.concurrency), num_prompts=self.num_prompts, warmup=self.warmup,
                         request_rate=self.request_rate if not isinstance(self.request_rate, tuple) else None,
                         rates=self.rates if isinstance(self.request_rate, tuple) else [],
                         arrival=self.arrival, sweep_rates=self.sweep_rates, cooldown=self.cooldown,
                         ramp_up_s=self.ramp_up_s, max_failed_share=self.max_failed_share, seed=seed, at_least=rows, repeats=self.repeats)


@dataclass(frozen=True)
class Workload:
    """The prompts: a built-in `workload` - `copy` (the seed's 500-1000-token question
    answering over a quoted passage, scaled by `input_scale`) or `open` (open questions, no
    passage) - or the rows of a `dataset` file (all, or `dataset_sample` of them), with
    `max_tokens` new tokens each (a dataset row may give its own), drawn with `seed`.
    A dataset is read and checked here, so a bad file fails before any server starts.
    `workload_shape` "multi-turn" makes each simulated user hold a conversation of `turns`
    requests (each prompt carries the earlier turns and the assistant's actual replies);
    `shared_prefix` tokens of one system prefix start every prompt (what prefix caching
    reuses). Both shape the built-in prompts; a dataset's rows are sent as they are.
    With `adapters` N, each request names one of the recipe's first N LoRA adapters as its
    model, spread `adapter_skew` ('uniform' or 'zipf:S'; a conversation keeps one adapter),
    and the result reports latency per adapter."""

    max_tokens: int = defaults.DEFAULT_MAX_TOKENS
    input_scale: float = 1.0
    seed: int = 0
    workload_shape: str = "single"
    turns: int = 3
    shared_prefix: int = 0
    workload: str = "copy"
    dataset: str | Path | None = None
    dataset_sample: int | None = None
    dataset_column: str | None = None
    adapters: int | None = None
    adapter_skew: str = "uniform"
    loaded: Any = field(default=None, init=False, compare=False, repr=False)  # the checked Dataset

    def __post_init__(self) -> None:
        from .workload import KINDS, parse_adapter_skew

        if self.max_tokens < 1:
            raise BenchError(f"max tokens must be >= 1 (got {self.max_tokens})")
        if self.input_scale <= 0:
            raise BenchError(f"input scale must be > 0 (got {self.input_scale})")
        if self.workload_shape not in WORKLOAD_SHAPES:
            raise BenchError(f"workload shape must be one of {', '.join(WORKLOAD_SHAPES)} (got {self.workload_shape!r})")
        if self.turns < 1:
            raise BenchError(f"turns per conversation must be >= 1 (got {self.turns})")
        if self.shared_prefix < 0:
            raise BenchError(f"shared prefix must be >= 0 tokens (got {self.shared_prefix})")
        if self.workload not in KINDS:
            raise BenchError(f"workload must be one of {', '.join(KINDS)} (got {self.workload!r})")
        if self.adapters is not None and self.adapters < 1:
            raise BenchError(f"--adapters must be >= 1 (got {self.adapters})")
        parse_adapter_skew(self.adapter_skew)  # BenchError naming the two forms
        if self.dataset is None:
            if self.dataset_sample is not None or self.dataset_column is not None:
                raise BenchError("--dataset-sample and --dataset-column need a --dataset file")
            return
        if self.workload != "copy":
            raise BenchError(f"give --dataset or --workload {self.workload}, not both")
        if self.input_scale != 1.0:
            raise BenchError("--input-scale shapes the built-in workload; a dataset's prompts are sent as they are")
        if self.turns_per_user > 1:
            raise BenchError("--workload-shape multi-turn writes follow-up questions about the built-in prompts' "
                             "topics; a dataset's rows are sent as they are (give a multi-turn row's whole "
                             "conversation as its chat 'messages' instead)")
        if self.shared_prefix:
            raise BenchError("--shared-prefix prepends to the built-in prompts' system prompt; a dataset's rows "
                             "are sent as they are (put the shared prefix in the file's rows instead)")
        from .datasets import load_dataset

        object.__setattr__(self, "loaded", load_dataset(self.dataset, column=self.dataset_column,
                                                        sample=self.dataset_sample, seed=self.seed))

    def adapter_names(self, recipe: "Recipe | None") -> list[str]:
        """The adapters the requests spread over: the recipe's first `adapters` (none without)."""
        if self.adapters is None:
            return []
        have = list(recipe.adapters.modules) if recipe is not None and recipe.adapters is not None else []
        if len(have) < self.adapters:
            what = f"recipe {recipe.name!r} has {len(have)}" if recipe is not None else "no recipe names them"
            raise BenchError(f"--adapters {self.adapters} spreads requests over a recipe's LoRA adapters, but {what}; "
                             f"use a recipe with an adapters: section (e.g. adapters) and at most that many")
        return have[:self.adapters]

    @property
    def turns_per_user(self) -> int:
        return self.turns if self.workload_shape == "multi-turn" else 1

    @property
    def kind(self) -> str:
        """What the prompts are: `copy`, `open` or `dataset`."""
        return "dataset" if self.dataset is not None else self.workload

    @property
    def rows(self) -> int:
        """The dataset rows a benchmark may send (0 for a built-in workload)."""
        return len(self.loaded.used) if self.loaded is not None else 0

    def build(self, num_prompts: int, tokenizer_path: str | Path | None = None) -> Any:
        """The prompt set (bench.workload.Workload) for levels of up to `num_prompts`
        requests; a dataset gives its first `num_prompts` rows, and a level with more
        requests than rows cycles through them. A multi-turn shape adds each prompt's
        follow-up questions."""
        from .workload import add_followups, build_open_workload, build_workload

        if self.loaded is not None:
            return self.loaded.workload(self.max_tokens, tokenizer_path, limit=num_prompts)
        if self.workload == "open":
            built = build_open_workload(num_prompts, self.max_tokens, self.seed, tokenizer_path=tokenizer_path,
                                        shared_prefix=self.shared_prefix)
        else:
            built = build_workload(num_prompts, self.max_tokens, self.input_scale, self.seed,
                                   tokenizer_path=tokenizer_path, shared_prefix=self.shared_prefix)
        return add_followups(built, self.turns, self.seed) if self.turns_per_user > 1 else built


WORKLOAD_SHAPES = ("single", "multi-turn")


@dataclass(frozen=True)
class Pricing:
    """Which instance's hourly rate prices the result, and the discount off on-demand."""

    instance: str = defaults.DEFAULT_INSTANCE
    discount: float = 0.0

    def __post_init__(self) -> None:
        from ..catalog import get_instance
        from ..errors import PricingError
        from ..pricing import check_discount

        get_instance(self.instance)  # UnknownInstanceError with the known names
        try:
            check_discount(self.discount)  # the one check of the range
        except PricingError as e:
            raise BenchError(str(e)) from None


@dataclass(frozen=True)
class BenchSpec:
    """One benchmark request: the target, and optionally a baseline recipe measured first
    with the same load, workload and pricing (the result is then a Comparison)."""

    target: Target
    load: Load = field(default_factory=Load)
    workload: Workload = field(default_factory=Workload)
    pricing: Pricing = field(default_factory=Pricing)
    baseline: "Recipe | None" = None
    results_dir: str | Path | None = None
    name: str | None = None
    slo: "SLO | str | None" = None  # e.g. "ttft_p99=2s,tpot_p50=50ms": goodput and pass/fail per level

    def __post_init__(self) -> None:
        if isinstance(self.baseline, (str, Path)):
            from ..recipes import load_recipe

            object.__setattr__(self, "baseline", load_recipe(self.baseline))
        if self.workload.dataset is not None:  # a trained draft learns from the benchmarked dataset
            from ..techniques.speculative import with_bench_dataset

            object.__setattr__(self, "baseline", with_bench_dataset(self.baseline, self.workload.dataset))
            if self.target.recipe is not None:
                object.__setattr__(self, "target", dataclasses.replace(
                    self.target, recipe=with_bench_dataset(self.target.recipe, self.workload.dataset)))
        if self.workload.adapters is not None:
            if self.target.sagemaker_endpoint is not None or self.target.endpoint is not None:
                raise BenchError("--adapters names adapters in the request's model field (vLLM multi-LoRA); a "
                                 "SageMaker endpoint picks an adapter by its inference component instead")
            for target in self.runs():
                self.workload.adapter_names(target.recipe)  # every run serves them, or a BenchError now
        if self.target.sessions:
            self._check_sessions()
        if self.workload.turns_per_user > 1 and (self.load.rates or self.load.sweep_rates):
            raise BenchError("multi-turn conversations run closed loop (each user sends its next turn when "
                             "the reply arrives): use --concurrency, not --rate or --sweep")
        if self.slo is not None:
            from .slo import SLO

            object.__setattr__(self, "slo", SLO.parse(self.slo))  # BenchError with the accepted form

    def _check_sessions(self) -> None:
        """--sessions needs conversations to keep together and an endpoint that routes by session."""
        from ..errors import SessionError

        t = self.target
        prebuilt = t.endpoint is not None and getattr(t.endpoint, "sessions", None) is not None
        if t.sagemaker_endpoint is None and not prebuilt:
            raise SessionError("--sessions opens SageMaker sticky sessions (InvokeEndpoint SessionId=NEW_SESSION), "
                               "which route a conversation's turns to one instance; a local server or --url is one "
                               "server, where they mean nothing: benchmark --sagemaker-endpoint NAME, or drop "
                               "--sessions (--shared-prefix and multi-turn already measure prefix caching there)")
        if self.workload.turns_per_user < 2:
            raise SessionError("--sessions keeps each conversation's turns in one session, but these requests are "
                               "single turns: add --workload-shape multi-turn --turns T (T >= 2)")

    @classmethod
    def of(cls, recipe: "Recipe | str | None" = None, **options: Any) -> "BenchSpec":
        """The spec from flat options: the keywords of `run_benchmark` (concurrency,
        num_prompts, max_tokens, instance, url, ...). An option nobody knows is a TypeError,
        as for a function; None means "the default"."""
        opts = {k: v for k, v in options.items() if v is not None}
        groups: dict[type, dict[str, Any]] = {Target: {}, Load: {}, Workload: {}, Pricing: {}}
        top: dict[str, Any] = {}
        for key, value in opts.items():
            for kind in groups:
                if key in _FIELDS[kind]:
                    groups[kind][key] = value
                    break
            else:
                if key not in ("baseline", "results_dir", "name", "slo"):
                    raise TypeError(f"unknown benchmark option {key!r}")
                top[key] = value
        return cls(target=Target(recipe=recipe, **groups[Target]), load=Load(**groups[Load]),
                   workload=Workload(**groups[Workload]), pricing=Pricing(**groups[Pricing]), **top)

    def runs(self) -> list[Target]:
        """What is measured, in order: the baseline (on a server of its own) then the target."""
        if self.baseline is None:
            return [self.target]
        base = dataclasses.replace(self.target, recipe=self.baseline, url=None, model=None,
                                   sagemaker_endpoint=None, endpoint=None, sessions=False)
        return [base, self.target]

    @property
    def levels_total(self) -> int:
        return self.load.sweep().levels_count() * len(self.runs())


_FIELDS = {kind: {f.name for f in dataclasses.fields(kind) if f.init} - {"recipe"}
           for kind in (Target, Load, Workload, Pricing)}


def field_default(kind: type, name: str) -> Any:
    """The default of a spec field, for the faces' option table."""
    f = next(f for f in dataclasses.fields(kind) if f.name == name)
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
