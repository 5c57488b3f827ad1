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
from ..recipes import ROUTING_STRATEGIES

CLI, MAGIC = "cli", "magic"
BOTH = frozenset({CLI, MAGIC})


def _parse_list(text: str, convert: Callable[[str], Any], what: str, example: str) -> list:
    try:
        vals = [convert(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what} separated by commas, like {example} (got {text!r})") from None
    if not vals:
        raise argparse.ArgumentTypeError(f"give at least one value, like {example}")
    return vals


def parse_int_list(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4], with a message a user can act on."""
    return _parse_list(text, int, "whole numbers", "1,2,4")


def parse_float_list(text: str) -> list[float]:
    """'1,2.5,4' -> [1.0, 2.5, 4.0] (request rates), with a message a user can act on."""
    return _parse_list(text, float, "numbers", "1,2.5,4")


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


def _output(help: str, default: str | None = None) -> tuple[Opt, ...]:
    """--output, also -o on the command line (in a notebook `-o VAR` stores the result)."""
    return (Opt(("--output", "-o"), help, default=default, faces=frozenset({CLI})),
            Opt(("--output",), help + "; `-o VAR` stores the result", default=default, faces=frozenset({MAGIC})))


_AWS = (Opt(("--region",), "AWS region (default: the session's)"),
        Opt(("--endpoint-url",), "AWS endpoint URL (tests: a moto server)"))
_TARGET = Opt(("--target",), "local vLLM or SageMaker", default="local", choices=("local", "sagemaker"))
_POLICY = (Opt(("--target-value",), "concurrent requests per instance/copy", type=float,
               default=_d(AutoscalingConfig, "target_value")),
           Opt(("--metric",), "", default=_d(AutoscalingConfig, "metric"), choices=("concurrency", "invocations")),
           Opt(("--scale-in-cooldown",), "seconds", type=int, default=_d(AutoscalingConfig, "scale_in_cooldown_s")),
           Opt(("--scale-out-cooldown",), "seconds", type=int, default=_d(AutoscalingConfig, "scale_out_cooldown_s")))

# The optimization job's inputs (optimize; export takes the same).
_OPT_JOB = (Opt(("--role-arn",), "the job's (and the endpoint's) execution role"),
            Opt(("--model-data-s3",), "the model's weights on S3 (the job's ModelSource)"),
            Opt(("--output-s3",), "where the job writes the optimized model"),
            Opt(("--instance-type",), "the instance the model is optimized for (default: the recipe's)"),
            Opt(("--tensor-parallel",), "shard over N GPUs (a ModelShardingConfig)", type=int),
            Opt(("--accept-eula",), flag=True))

BENCH_OPTIONS = (
    Opt(("recipe",), "recipe YAML path or shipped recipe name (e.g. baseline)", nargs="?"),
    Opt(("--baseline",), "also benchmark this recipe and compare (ratios)"),
    Opt(("--url",), "benchmark a running OpenAI-compatible endpoint instead of starting one"),
    Opt(("--model",), "model name served at --url (default: read from /v1/models)"),
    Opt(("--sagemaker-endpoint",), "benchmark this SageMaker endpoint (SigV4, streaming)"),
    Opt(("--region",), "AWS region of --sagemaker-endpoint"),
    Opt(("--sessions",), "with --sagemaker-endpoint and --workload-shape multi-turn: each conversation in a sticky "
        "session (opened with SessionId=NEW_SESSION, its id on every turn, closed at the end)", flag=True),
    Opt(("--concurrency",), "concurrency levels, e.g. 1,2,4,8", type=parse_int_list, default=_d(Load, "concurrency")),
    Opt(("--prompts",), "requests per level (default 2 x concurrency, >= 4)", dest="num_prompts", type=int),
    Opt(("--max-tokens",), "new tokens per request", type=int, default=_d(Workload, "max_tokens")),
    Opt(("--input-scale",), "scale the seed's 500-1000-token prompts", type=float, default=_d(Workload, "input_scale")),
    Opt(("--workload",), "built-in prompts: copy (questions over a quoted passage, n-gram's best case) or open "
        "(open questions, nothing to quote)", default=_d(Workload, "workload"), choices=("copy", "open")),
    Opt(("--dataset",), "send the rows of this file instead: JSONL of chat 'messages' or 'prompt' rows, "
        "ShareGPT JSON/JSONL ('conversations'), or CSV with a prompt column"),
    Opt(("--dataset-sample",), "rows drawn from --dataset (with --seed; default all)", type=int),
    Opt(("--dataset-column",), "CSV: the prompt column (default: prompt, question, input or text)"),
    Opt(("--seed",), "seed of the prompts, the dataset sample and request arrivals", type=int,
        default=_d(Workload, "seed")),
    Opt(("--adapters",), "spread requests over the recipe's first N LoRA adapters (model field = adapter name)",
        type=int),
    Opt(("--adapter-skew",), "with --adapters: uniform, or zipf:S (the k-th adapter gets 1/k^S of the requests)",
        default=_d(Workload, "adapter_skew")),
    Opt(("--rate",), "request rate(s), req/s: one rate (each --concurrency caps in-flight), or several like 1,2,4 "
        "(the levels; the highest --concurrency caps in-flight)", dest="request_rate", type=parse_float_list),
    Opt(("--arrival",), "arrivals at --rate: poisson (exponential gaps) or constant (evenly spaced)",
        default=_d(Load, "arrival"), choices=("poisson", "constant")),
    Opt(("--sweep",), "N: measure the saturation throughput (closed loop at the highest --concurrency), then N "
        "rates evenly up to it", dest="sweep_rates", type=int),
    Opt(("--warmup",), "warm-up requests per level, left out of its metrics (default one per slot)", type=int),
    Opt(("--cooldown",), "leave each level's last N completions out of its metrics (counted in the result)",
        type=int, default=_d(Load, "cooldown")),
    Opt(("--ramp-up",), "seconds over which a closed-loop level starts its users (default 0: all at once; "
        "breaks lock-step waves of equal-length requests)", dest="ramp_up_s", type=float,
        default=_d(Load, "ramp_up_s")),
    Opt(("--max-failed-share",), "a level with a larger share of failed requests is marked failed (exit code 1)",
        type=float, default=_d(Load, "max_failed_share")),
    Opt(("--workload-shape",), "single requests, or multi-turn conversations (each turn carries the earlier "
        "turns and the actual replies)", default=_d(Workload, "workload_shape"), choices=("single", "multi-turn")),
    Opt(("--turns",), "turns per conversation with --workload-shape multi-turn", type=int,
        default=_d(Workload, "turns")),
    Opt(("--shared-prefix",), "TOKENS of one system prefix that starts every prompt (prefix caching)", type=int,
        default=_d(Workload, "shared_prefix")),
    Opt(("--slo",), "service-level objectives, e.g. ttft_p99=2s,tpot_p50=50ms: adds goodput (req/s meeting "
        "every SLO) and pass/fail per level"),
    Opt(("--repeats",), "run every level N times (fresh prompts each) and report 95%% intervals", type=int,
        default=_d(Load, "repeats")),
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
    Verb("tune", "search recipes x concurrency for the cheapest blended $/1M that meets an SLO", (
        Opt(("model",), "catalog model id (default: the default model)", nargs="?"),
        Opt(("--slo",), "the SLO to meet, e.g. ttft_p99=2s,tpot_p50=50ms (metrics ttft, tpot, itl, e2e)"),
        Opt(("--instance",), "instance whose rate prices (and roofline bounds) the search",
            default=_d(Pricing, "instance")),
        Opt(("--recipes",), "recipes to search (names or paths; default: baseline, ngram k=2/4, suffix, awq, "
            "compile, fp32)", nargs="+"),
        Opt(("--concurrency",), "levels to search, e.g. 1,2,4,8", type=parse_int_list, default=(1, 2, 4, 8)),
        Opt(("--prompts",), "requests per level", dest="num_prompts", type=int),
        Opt(("--max-tokens",), "new tokens per request", type=int, default=_d(Workload, "max_tokens")),
        Opt(("--input-scale",), "scale the seed's prompts", type=float, default=_d(Workload, "input_scale")),
        Opt(("--discount",), "discount off the on-demand rate, 0..1", type=float, default=_d(Pricing, "discount")),
        *_output("where the winner's recipe YAML goes (default tuned.yaml)"),
        Opt(("--target-rps",), "size a deployment for this load (req/s): instances, copies, autoscaling target",
            type=float),
        Opt(("--grid",), "measure every candidate (no pruning): the full grid search", flag=True),
        Opt(("--results-dir",), "where the benchmark results JSON go"),
        Opt(("--target",), "local: measure here; sagemaker (with --dry-run): the same SLO as a SageMaker AI "
            "recommendation job", default="local", choices=("local", "sagemaker")),
        Opt(("--dry-run",), "with --target sagemaker: print the exact CreateAIWorkloadConfig and "
            "CreateAIRecommendationJob requests; send nothing", flag=True),
        Opt(("--region",), "with --target sagemaker: the job's region (default: the session's, else us-east-1)"))),
    Verb("report", "one self-contained HTML page of results (a run, or a comparison)", (
        Opt(("results",), "result JSON paths (or @variables in a notebook); baseline first", nargs="+"),
        *_output("HTML path", "report.html"),
        Opt(("--title",), "page title"))),
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
        Opt(("--routing",), "sagemaker: the variant's RoutingStrategy (default: the recipe's deploy.routing, "
            "else least_outstanding_requests)", choices=ROUTING_STRATEGIES),
        Opt(("--inference-component",), "sagemaker: deploy as an inference component", flag=True),
        Opt(("--model-data-s3",)), Opt(("--draft-model-s3",)), Opt(("--accept-eula",), flag=True),
        Opt(("--adapters-s3",), "sagemaker: S3 prefix with <adapter>.tar.gz for each of the recipe's LoRA adapters"),
        Opt(("--dry-run",), "sagemaker: print the exact requests, create nothing", flag=True), *_AWS)),
    Verb("endpoints", "local endpoints and whether they are alive"),
    Verb("undeploy", "stop a local endpoint (by pid) or delete a SageMaker one", (
        Opt(("name",)), _TARGET, *_AWS)),
    Verb("invoke", "send one prompt to an endpoint", (
        Opt(("name",)), Opt(("prompt",)), _TARGET, Opt(("--max-tokens",), type=int, default=64),
        Opt(("--stream",), flag=True), Opt(("--inference-component",), "sagemaker: the component to invoke"),
        Opt(("--session",), "sagemaker: 'new' opens a sticky session (NEW_SESSION), or the id of an open one"),
        Opt(("--close-session",), "sagemaker: close the session after this reply", flag=True),
        Opt(("--adapter",), "a LoRA adapter of the recipe: the model field locally, its inference component on SageMaker"),
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
        Opt(("--chart",), "PNG path for the timeline"),
        Opt(("--routing",), "compare routers instead (comma-separated: random,least_outstanding,sticky) on a fixed "
            "fleet under multi-turn traffic; prints the latency difference and its assumptions"),
        Opt(("--replicas",), "with --routing: instances in the fixed fleet", type=int, default=4),
        Opt(("--prefix-hit-factor",), "with --routing: share of a prompt prefilled when its prefix is cached",
            type=float, default=0.2))),
    Verb("prepare", "build a recipe's artifacts ahead of deployment (AWQ, trained draft or EAGLE head, LoRA adapters, compile cache)", (
        Opt(("recipe",)), Opt(("--no-warm",), "skip the warm start that fills the compile cache", dest="warm", negate=True),
        Opt(("--dataset",), "JSONL of chat prompts ('messages' or 'prompt' per line) a trained draft or EAGLE head learns from "
            "(default: the recipe's speculative.train.dataset, else built-in text)"))),
    Verb("serve", "start a local vLLM server for a recipe and keep it (bench reuses it)", (
        Opt(("recipe",)), Opt(("--host",), default="127.0.0.1"), Opt(("--port",), type=int))),
    Verb("stop", "stop servers started with serve (all when no PID)", (
        Opt(("pids",), nargs="*", type=int),), faces=frozenset({MAGIC})),
    Verb("optimize", "run a SageMaker optimization job for a recipe (quantize, compile, shard, EAGLE) and deploy its output", (
        Opt(("recipe",), "recipe YAML path or shipped name (or, in a notebook, @dry from --dry-run)"), _TARGET,
        Opt(("--dry-run",), "print the exact requests (job, then the deploy of its output); send nothing", flag=True),
        *_OPT_JOB, Opt(("--job-name",), "optimization job name (default: the recipe's name and the time)"),
        Opt(("--resume",), "wait for this earlier job (left running by an interrupt) and deploy its output"),
        Opt(("--name",), "endpoint name of the deployed output (default: the recipe's name and the time)"),
        Opt(("--no-deploy",), "run the job only; deploy nothing", flag=True),
        Opt(("--inference-component",), "deploy the output as an inference component", flag=True),
        Opt(("--fine-tuned",), "the model at --model-data-s3 is a fine-tuned model", flag=True),
        Opt(("--max-runtime",), "job's MaxRuntimeInSeconds", type=int, default=36000),
        Opt(("--timeout",), "seconds to wait for the job before handing back (it keeps running)", type=float,
            default=4 * 3600.0),
        Opt(("--draft-model-s3",), "a draft_model recipe's draft on S3 (for the deployed output)"), *_AWS)),
    Verb("recommend", "build a SageMaker AI recommendation job from an SLO (the managed twin of tune)", (
        Opt(("recipe",)), Opt(("--slo",), "e.g. ttft_p99=2s (metric_pNN=value[ms|s], comma-separated)"),
        Opt(("--optimize-for",), "also rank by throughput and/or cost (comma-separated)"),
        Opt(("--dry-run",), "print the exact requests; send nothing", flag=True),
        Opt(("--role-arn",), "the job's execution role"), Opt(("--model-data-s3",), "the model's weights on S3"),
        Opt(("--output-s3",), "where the job writes its recommendations"),
        Opt(("--instance-types",), "up to 3 candidates, comma-separated, e.g. ml.g5.xlarge,ml.g6.xlarge"),
        Opt(("--framework",), default="LMI", choices=("LMI", "VLLM")),
        Opt(("--concurrency",), "in-flight requests of the workload", type=int, default=1), *_AWS)),
    Verb("export", "write a recipe as SageMaker Python SDK code (ModelBuilder.optimize and deploy)", (
        Opt(("recipe",)), Opt(("--format",), default="sagemaker-sdk", choices=("sagemaker-sdk",)),
        Opt(("-o", "--output"), "write the code to this .py file (default: print it)", dest="output",
            faces=frozenset({CLI})),
        Opt(("--output",), "write the code to this .py file (-o VAR stores the result)", faces=frozenset({MAGIC})),
        Opt(("--role-arn",), "execution role (default: a DRY-RUN placeholder to replace)"),
        Opt(("--model-data-s3",), "the model's weights on S3"), Opt(("--output-s3",), "where the job writes its output"),
        Opt(("--instance-type",), "e.g. ml.g5.12xlarge (default: the recipe's)"),
        Opt(("--tensor-parallel",), "shard over N GPUs (a ModelShardingConfig)", type=int),
        Opt(("--accept-eula",), flag=True), Opt(("--region",), "AWS region (default: the session's)"))),
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
