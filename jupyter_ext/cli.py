"""`jupyter-optimize <verb>`: the command-line face. Each verb parses its options and calls
one core function; verbs and options mirror `%optimize` in notebooks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from . import defaults
from .errors import OptimizeError


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
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"top_k\": 1}}' ({e})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object (got {type(value).__name__})")
    return value


def bench_endpoint_options(args: argparse.Namespace) -> dict:
    """run_benchmark keywords of the options that shape requests to another server."""
    return {"tokenizer_path": args.tokenizer, "ignore_eos": not args.no_ignore_eos, "extra_body": args.extra_body}


def add_bench_options(p: argparse.ArgumentParser) -> None:
    """Options shared by `bench` in the CLI and the magic."""
    p.add_argument("recipe", nargs="?", help="recipe YAML path or shipped recipe name (e.g. baseline)")
    p.add_argument("--baseline", help="also benchmark this recipe and compare (ratios)")
    p.add_argument("--url", help="benchmark a running OpenAI-compatible endpoint instead of starting one")
    p.add_argument("--model", help="model name served at --url (default: read from /v1/models)")
    p.add_argument("--sagemaker-endpoint", help="benchmark this SageMaker endpoint (SigV4, streaming)")
    p.add_argument("--region", help="AWS region of --sagemaker-endpoint")
    p.add_argument("--concurrency", type=parse_int_list, default=list(defaults.DEFAULT_CONCURRENCY),
                   help="concurrency levels, e.g. 1,2,4,8")
    p.add_argument("--prompts", type=int, default=None, help="requests per level (default 2 x concurrency, >= 4)")
    p.add_argument("--max-tokens", type=int, default=defaults.DEFAULT_MAX_TOKENS, help="new tokens per request")
    p.add_argument("--input-scale", type=float, default=1.0, help="scale the seed's 500-1000-token prompts")
    p.add_argument("--rate", type=float, default=None, help="Poisson request rate (req/s); concurrency caps in-flight")
    p.add_argument("--warmup", type=int, default=None, help="warm-up requests per level (default one per slot)")
    p.add_argument("--instance", default=defaults.DEFAULT_INSTANCE, help="instance whose rate prices the result")
    p.add_argument("--discount", type=float, default=0.0, help="discount off the on-demand rate, 0..1")
    p.add_argument("--results-dir", default=None, help="where results JSON and charts go (default ./results)")
    p.add_argument("--api", choices=["chat", "completions"], default="chat")
    p.add_argument("--tokenizer", default=None,
                   help="model folder whose tokenizer sizes the prompts for --url (default: 4 characters a token)")
    p.add_argument("--no-ignore-eos", action="store_true",
                   help="do not send vLLM's ignore_eos (for servers that reject it; outputs may end early)")
    p.add_argument("--extra-body", type=parse_json_object, default=None,
                   help="JSON object merged into every request, e.g. '{\"logit_bias\": {\"2\": -100}}'")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="jupyter-optimize", description=__doc__)
    ap.add_argument("--local-rate", type=float, default=None, help="USD/hour of 'this machine' (instance local)")
    sub = ap.add_subparsers(dest="verb", required=True)
    sub.add_parser("models", help="catalog models")
    sub.add_parser("instances", help="catalog instance types and prices")
    p = sub.add_parser("plan", help="memory fit and cheapest instance for a model")
    p.add_argument("model")
    p.add_argument("--precision", default="fp16")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--input-tokens", type=int, default=622)
    p.add_argument("--output-tokens", type=int, default=250)
    p = sub.add_parser("recipe", help="list, show or validate recipes")
    p.add_argument("action", choices=["list", "show", "validate"])
    p.add_argument("paths", nargs="*")
    p = sub.add_parser("bench", help="benchmark a recipe (and a baseline) at several concurrencies")
    add_bench_options(p)
    p.add_argument("--chart", default=None, help="PNG path for the chart (default next to the results JSON)")
    p.add_argument("--no-chart", action="store_true")
    p = sub.add_parser("compare", help="compare two saved results (recipe, baseline)")
    p.add_argument("recipe_result")
    p.add_argument("baseline_result")
    p = sub.add_parser("price", help="blended $/1M tokens of a saved result, or of given figures")
    p.add_argument("result", nargs="?")
    p.add_argument("--instance", default=defaults.DEFAULT_INSTANCE)
    p.add_argument("--discount", type=float, default=0.0)
    p.add_argument("--usd-per-hour", type=float)
    p.add_argument("--itl-ms", type=float, help="p50 inter-token latency in ms")
    p.add_argument("--concurrency", type=int)
    p = sub.add_parser("chart", help="draw saved results as a PNG")
    p.add_argument("results", nargs="+")
    p.add_argument("--output", default="results/chart.png", help="PNG path")
    from .cli_deploy import add_deploy_verbs

    add_deploy_verbs(sub)
    p = sub.add_parser("prepare", help="build a recipe's artifacts ahead of deployment (AWQ, draft, compile cache)")
    p.add_argument("recipe")
    p.add_argument("--no-warm", action="store_true", help="skip the warm start that fills the compile cache")
    p = sub.add_parser("serve", help="start a local vLLM server for a recipe until Ctrl-C")
    p.add_argument("recipe")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None)
    return ap


def _bench(args) -> int:
    from . import charts
    from .bench import run_benchmark

    if args.recipe is None and args.url is None and args.sagemaker_endpoint is None:
        raise OptimizeError("bench needs a recipe (e.g. recipes/baseline.yaml), --url or --sagemaker-endpoint")
    endpoint = None
    if args.sagemaker_endpoint:
        from .bench.sagemaker_stream import sagemaker_endpoint

        endpoint = sagemaker_endpoint(args.sagemaker_endpoint, region=args.region)
    kw = dict(concurrency=args.concurrency, num_prompts=args.prompts, max_tokens=args.max_tokens,
              input_scale=args.input_scale, request_rate=args.rate, warmup=args.warmup, instance=args.instance,
              discount=args.discount, results_dir=args.results_dir, api=args.api, **bench_endpoint_options(args))
    results = []
    try:
        if args.baseline:
            results.append(run_benchmark(args.baseline, **kw))
        results.append(run_benchmark(args.recipe, url=args.url, model=args.model, endpoint=endpoint, **kw))
    except KeyboardInterrupt:
        print("\ninterrupted: the server was stopped; finished levels are saved in "
              f"{args.results_dir or defaults.results_dir()}/", file=sys.stderr)
        return 130
    for r in results:
        print(r, f"\nsaved: {r.path}\n")
    if len(results) == 2:
        print(_ratios(results))
    if not args.no_chart:
        png = args.chart or str(Path(results[-1].path).with_suffix(".png"))
        charts.save(results, png)
        print(f"chart: {png}")
    return 0 if all(r.status == "complete" for r in results) else 1


def _ratios(results) -> str:
    from .bench import Comparison
    from .bench.result import format_table

    c = Comparison.of(results[1], results[0])
    return f"{c.recipe.name} / {c.baseline.name}:\n{format_table(c.rows)}"


def _simple(args) -> object:
    from . import catalog, planning, recipes

    if args.verb == "models":
        return catalog.list_models()
    if args.verb == "instances":
        return catalog.list_instances()
    if args.verb == "plan":
        return planning.plan(args.model, precision=args.precision, concurrency=args.concurrency,
                            input_tokens=args.input_tokens, output_tokens=args.output_tokens)
    if args.verb == "recipe":
        if args.action == "list":
            return "\n".join(str(r) for r in recipes.list_recipes())
        if not args.paths:
            raise OptimizeError(f"recipe {args.action} needs at least one recipe path or name")
        loaded = [recipes.load_recipe(p) for p in args.paths]
        if args.action == "show":
            return "\n---\n".join(r.to_yaml() for r in loaded)
        return "\n".join(f"ok: {p} -> {r}" for p, r in zip(args.paths, loaded))
    return None


def _price(args) -> object:
    from .bench import BenchResult
    from .pricing import blended_price

    if args.result:
        r = BenchResult.load(args.result)
        r.instance, r.discount = args.instance, args.discount
        return r.prices()
    if None in (args.usd_per_hour, args.itl_ms, args.concurrency):
        raise OptimizeError("price needs a result file, or all of --usd-per-hour, --itl-ms and --concurrency")
    return blended_price(args.usd_per_hour, args.itl_ms / 1000.0, args.concurrency, args.discount)


def _serve(args) -> int:
    import time

    from .engine import server_for_recipe
    from .recipes import load_recipe

    srv = server_for_recipe(load_recipe(args.recipe), host=args.host, port=args.port,
                            start_timeout_s=defaults.DEFAULT_START_TIMEOUT_S)
    with srv.start():
        print(f"serving {srv.command.served_model_name} at {srv.base_url} (pid {srv.pid}); Ctrl-C stops it")
        try:
            while srv.alive():
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.local_rate is not None:
            from .catalog import set_local_rate

            set_local_rate(args.local_rate)
        if args.verb == "bench":
            return _bench(args)
        if args.verb == "serve":
            return _serve(args)
        if args.verb == "prepare":
            from .recipes import load_recipe
            from .techniques.prepare import prepare

            print(prepare(load_recipe(args.recipe), warm=not args.no_warm))
            return 0
        if args.verb == "compare":
            from .bench import BenchResult, Comparison

            print(Comparison.of(BenchResult.load(args.recipe_result), BenchResult.load(args.baseline_result)))
            return 0
        if args.verb == "chart":
            from . import charts
            from .bench import BenchResult

            charts.save([BenchResult.load(p) for p in args.results], args.output)
            print(f"chart: {args.output}")
            return 0
        from .cli_deploy import DEPLOY_VERBS

        if args.verb in DEPLOY_VERBS:
            print(DEPLOY_VERBS[args.verb](args))
            return 0
        out = _price(args) if args.verb == "price" else _simple(args)
        print(out)
        return 0
    except OptimizeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
