"""The one table of verbs and options that builds the CLI's parser and the magic's parser.

A row says an option's flags, type, default and help once; `build_parser(face)` turns the
table into argparse for the `cli` or the `magic` face, so `jupyter-optimize bench --X` and
`%optimize bench --X` cannot drift apart. An option a face cannot use says so in `faces`
(e.g. `--background` only means something in a notebook). Defaults come from the core's
spec types (bench.spec, autoscale.scenario, autoscale.policy), never from a face. Parsing
helpers for values typed on a line (`1,2,4`, a JSON object) live here too, for both faces.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any, Callable

from ..autoscale import scenario as sim
from ..autoscale.policy import AutoscalingConfig
from ..bench.spec import Load, Pricing, Target, Workload, field_default

CLI, MAGIC = "cli", "magic"
BOTH = frozenset({CLI, MAGIC})


def parse_int_list(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4], with a message a user can act on."""
    try:
        vals = [int(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, like 1,2,4 (got {text!r})") from None
    if not vals:
        raise argparse.ArgumentTypeError("give at least one value, like 1,2,4")
    return vals


def parse_json_object(text: str) -> dict:
    """'{"a": 1}' -> {'a': 1}, with a message a user can act on."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"top_k\": 1}}' ({e})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object (got {type(value).__name__})")
    return value


@dataclass(frozen=True)
class Opt:
    """One option (or positional argument) of a verb."""

    flags: tuple[str, ...]
    help: str = ""
    dest: str | None = None
    type: Callable[[str], Any] | None = None
    default: Any = None
    nargs: str | None = None
    choices: tuple | None = None
    flag: bool = False            # store_true
    negate: bool = False          # store_false into `dest` (e.g. --no-warm -> warm=False)
    const: Any = None
    faces: frozenset = BOTH

    def add_to(self, p: argparse.ArgumentParser) -> None:
        kw: dict[str, Any] = {"help": self.help}
        if self.flag or self.negate:
            kw["action"] = "store_false" if self.negate else "store_true"
        else:
            for k in ("type", "nargs", "choices", "const"):
                if getattr(self, k) is not None:
                    kw[k] = list(self.choices) if k == "choices" else getattr(self, k)
            kw["default"] = list(self.default) if isinstance(self.default, tuple) else self.default
        if self.dest and self.flags[0].startswith("-"):
            kw["dest"] = self.dest
        p.add_argument(*self.flags, **kw)


@dataclass(frozen=True)
class Verb:
    name: str
    help: str
    options: tuple[Opt, ...] = ()
    faces: frozenset = BOTH


def _d(kind: type, name: str) -> Any:
    return field_default(kind, name)


_AWS = (Opt(("--region",), "AWS region (default: the session's)"),
        Opt(("--endpoint-url",), "AWS endpoint URL (tests: a moto server)"))
_TARGET = Opt(("--target",), "local vLLM or SageMaker", default="local", choices=("local", "sagemaker"))
_POLICY = (Opt(("--target-value",), "concurrent requests per instance/copy", type=float,
               default=_d(AutoscalingConfig, "target_value")),
           Opt(("--metric",), "", default=_d(AutoscalingConfig, "metric"), choices=("concurrency", "invocations")),
           Opt(("--scale-in-cooldown",), "seconds", type=int, default=_d(AutoscalingConfig, "scale_in_cooldown_s")),
           Opt(("--scale-out-cooldown",), "seconds", type=int, default=_d(AutoscalingConfig, "scale_out_cooldown_s")))

BENCH_OPTIONS = (
    Opt(("recipe",), "recipe YAML path or shipped recipe name (e.g. baseline)", nargs="?"),
    Opt(("--baseline",), "also benchmark this recipe and compare (ratios)"),
    Opt(("--url",), "benchmark a running OpenAI-compatible endpoint instead of starting one"),
    Opt(("--model",), "model name served at --url (default: read from /v1/models)"),
    Opt(("--sagemaker-endpoint",), "benchmark this SageMaker endpoint (SigV4, streaming)"),
    Opt(("--region",), "AWS region of --sagemaker-endpoint"),
    Opt(("--concurrency",), "concurrency levels, e.g. 1,2,4,8", type=parse_int_list, default=_d(Load, "concurrency")),
    Opt(("--prompts",), "requests per level (default 2 x concurrency, >= 4)", dest="num_prompts", type=int),
    Opt(("--max-tokens",), "new tokens per request", type=int, default=_d(Workload, "max_tokens")),
    Opt(("--input-scale",), "scale the seed's 500-1000-token prompts", type=float, default=_d(Workload, "input_scale")),
    Opt(("--rate",), "Poisson request rate (req/s); concurrency caps in-flight", dest="request_rate", type=float),
    Opt(("--warmup",), "warm-up requests per level (default one per slot)", type=int),
    Opt(("--instance",), "instance whose rate prices the result", default=_d(Pricing, "instance")),
    Opt(("--discount",), "discount off the on-demand rate, 0..1", type=float, default=_d(Pricing, "discount")),
    Opt(("--results-dir",), "where results JSON and charts go (default ./results)"),
    Opt(("--api",), "", default=_d(Target, "api"), choices=("chat", "completions")),
    Opt(("--tokenizer",), "model folder whose tokenizer sizes the prompts for --url (default: 4 characters a token)",
        dest="tokenizer_path"),
    Opt(("--no-ignore-eos",), "do not send vLLM's ignore_eos (for servers that reject it; outputs may end early)",
        dest="ignore_eos", negate=True),
    Opt(("--extra-body",), "JSON object merged into every request, e.g. '{\"logit_bias\": {\"2\": -100}}'",
        type=parse_json_object),
    Opt(("--chart",), "PNG path for the chart (CLI default: next to the results JSON)"),
    Opt(("--no-chart",), "CLI: draw no chart (a notebook draws one only with --chart)", flag=True),
    Opt(("--background",), "return at once with a handle; the display keeps updating", flag=True,
        faces=frozenset({MAGIC})),
)
# The option dests that are not BenchSpec.of keywords (what the face does with the result).
BENCH_FACE_DESTS = {"recipe", "chart", "no_chart", "background"}

CHART_KINDS = ("dashboard", "throughput", "ttft", "itl", "price")  # = charts.KINDS (charts imports matplotlib)

VERBS: tuple[Verb, ...] = (
    Verb("models", "catalog models"),
    Verb("instances", "catalog instance types and prices"),
    Verb("plan", "memory fit and cheapest instance for a model", (
        Opt(("model",)), Opt(("--precision",), default="fp16"),
        Opt(("--concurrency",), type=int, default=1),
        Opt(("--input-tokens",), type=int, default=622), Opt(("--output-tokens",), type=int, default=250))),
    Verb("recipe", "list, show, validate or make recipes", (
        Opt(("action",), choices=("list", "show", "validate", "new")),
        Opt(("paths",), nargs="*"),
        Opt(("--from",), "recipe new: start from this recipe", dest="base", default="baseline"),
        Opt(("--save",), "recipe new/show: also write the recipe YAML here"),
        Opt(("--target",), "check the stack for this target", default="local", choices=("local", "sagemaker")))),
    Verb("bench", "benchmark a recipe (and a baseline) at several concurrencies", BENCH_OPTIONS),
    Verb("compare", "compare two saved results (recipe, baseline)", (
        Opt(("recipe_result",)), Opt(("baseline_result",)))),
    Verb("price", "blended $/1M tokens of a saved result, or of given figures", (
        Opt(("result",), nargs="?"), Opt(("--instance",), default=_d(Pricing, "instance")),
        Opt(("--discount",), type=float, default=_d(Pricing, "discount")),
        Opt(("--usd-per-hour",), type=float), Opt(("--itl-ms",), "p50 inter-token latency in ms", type=float),
        Opt(("--concurrency",), type=int))),
    Verb("chart", "draw saved results as a PNG (a notebook shows it)", (
        Opt(("results",), nargs="+"),
        Opt(("--output",), "PNG path (CLI default results/chart.png; a notebook shows the chart)"),
        Opt(("--kind",), "", default="dashboard", choices=CHART_KINDS))),
    Verb("deploy", "deploy a recipe locally (vLLM) or to a SageMaker endpoint", (
        Opt(("recipe",)), _TARGET,
        Opt(("--name",), "endpoint name (default: the recipe's name)"),
        Opt(("--host",), "local: address to bind", default="127.0.0.1"),
        Opt(("--port",), "local: port (default: a free one)", type=int),
        Opt(("--role-arn",), "sagemaker: execution role ARN"),
        Opt(("--instance-type",), "sagemaker: e.g. ml.g5.2xlarge (default: the recipe's)"),
        Opt(("--instance-count",), type=int, default=1),
        Opt(("--routing",), default="LEAST_OUTSTANDING_REQUESTS", choices=("LEAST_OUTSTANDING_REQUESTS", "RANDOM")),
        Opt(("--inference-component",), "sagemaker: deploy as an inference component", flag=True),
        Opt(("--model-data-s3",)), Opt(("--draft-model-s3",)), Opt(("--accept-eula",), flag=True),
        Opt(("--dry-run",), "sagemaker: print the exact requests, create nothing", flag=True), *_AWS)),
    Verb("endpoints", "local endpoints and whether they are alive"),
    Verb("undeploy", "stop a local endpoint (by pid) or delete a SageMaker one", (
        Opt(("name",)), _TARGET, *_AWS)),
    Verb("invoke", "send one prompt to an endpoint", (
        Opt(("name",)), Opt(("prompt",)), _TARGET, Opt(("--max-tokens",), type=int, default=64),
        Opt(("--stream",), flag=True), Opt(("--inference-component",), "sagemaker: the component to invoke"),
        *_AWS)),
    Verb("autoscale", "attach, show or detach concurrency-based autoscaling", (
        Opt(("action",), choices=("attach", "show", "detach")), Opt(("endpoint",)),
        Opt(("--variant",), default="AllTraffic"), Opt(("--inference-component",)),
        Opt(("--min",), dest="min_capacity", type=int, default=_d(AutoscalingConfig, "min_capacity")),
        Opt(("--max",), dest="max_capacity", type=int, default=_d(AutoscalingConfig, "max_capacity")),
        *_POLICY, Opt(("--guard-invocations",), "invocations/min guard policy", type=float),
        Opt(("--dry-run",), flag=True), *_AWS)),
    Verb("simulate", "simulate an autoscaling policy under a traffic ramp before paying", (
        Opt(("--result",), "bench result (JSON path, or @variable in a notebook) whose TTFT/TPOT curve drives replicas"),
        Opt(("--batch1-tok-s",), "without --result: per-user tok/s at batch 1", type=float,
            default=sim.DEFAULT_BATCH1_TOK_S),
        Opt(("--saturation",), "without --result: concurrency where decode slows", type=float,
            default=sim.DEFAULT_SATURATION),
        Opt(("--ramp",), "time_s:req_per_s steps", default=sim.DEFAULT_RAMP),
        Opt(("--duration",), "seconds of traffic", type=float, default=sim.DEFAULT_DURATION_S),
        Opt(("--min",), dest="min_capacity", type=int, default=_d(AutoscalingConfig, "min_capacity")),
        Opt(("--max",), dest="max_capacity", type=int, default=sim.DEFAULT_MAX_CAPACITY),
        *_POLICY,
        Opt(("--usd-per-hour",), type=float, default=sim.DEFAULT_USD_PER_HOUR),
        Opt(("--compile-cache",), "model load uses the compiled-artifact cache", flag=True),
        Opt(("--ttft-slo",), "seconds", type=float, default=2.0),
        Opt(("--seed",), type=int, default=0),
        Opt(("--chart",), "PNG path for the timeline"))),
    Verb("prepare", "build a recipe's artifacts ahead of deployment (AWQ, trained draft, compile cache)", (
        Opt(("recipe",)), Opt(("--no-warm",), "skip the warm start that fills the compile cache", dest="warm", negate=True),
        Opt(("--dataset",), "JSONL of chat prompts ('messages' or 'prompt' per line) a trained draft learns from "
            "(default: the recipe's speculative.train.dataset, else built-in text)"))),
    Verb("serve", "start a local vLLM server for a recipe and keep it (bench reuses it)", (
        Opt(("recipe",)), Opt(("--host",), default="127.0.0.1"), Opt(("--port",), type=int))),
    Verb("stop", "stop servers started with serve (all when no PID)", (
        Opt(("pids",), nargs="*", type=int),), faces=frozenset({MAGIC})),
    Verb("panel", "the widget panel: model picker, recipe builder, benchmark, deploy, autoscale",
         faces=frozenset({MAGIC})),
)

GLOBAL_OPTIONS = (Opt(("--local-rate",), "USD/hour of 'this machine' (instance local)", type=float),)


def verb(name: str) -> Verb:
    return next(v for v in VERBS if v.name == name)


def build_parser(face: str, prog: str = "jupyter-optimize", description: str | None = None) -> argparse.ArgumentParser:
    """The argparse parser of one face, from the table."""
    ap = argparse.ArgumentParser(prog=prog, description=description)
    for o in GLOBAL_OPTIONS:
        o.add_to(ap)
    sub = ap.add_subparsers(dest="verb", required=True)
    for v in VERBS:
        if face not in v.faces:
            continue
        p = sub.add_parser(v.name, help=v.help)
        for o in v.options:
            if face in o.faces:
                o.add_to(p)
    return ap


def _dest(o: Opt) -> str:
    return o.dest or o.flags[0].lstrip("-").replace("-", "_")


def call_args(args: argparse.Namespace, face: str) -> dict[str, Any]:
    """The keyword arguments of the verb's core function: the parsed values of the verb's own
    options (as the table names them) for this face."""
    v = verb(args.verb)
    return {_dest(o): getattr(args, _dest(o)) for o in v.options if face in o.faces and hasattr(args, _dest(o))}


def bench_options(args: argparse.Namespace, face: str) -> dict[str, Any]:
    """`BenchSpec.of` keywords from a parsed bench line (either face)."""
    return {k: v for k, v in call_args(args, face).items() if k not in BENCH_FACE_DESTS}
