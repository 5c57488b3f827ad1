"""The IPython face: `%optimize` and `%%optimize`, thin over the core API.

Each verb is parsed with the shared verb table (`verbs.table`, the same rows build the
command line's parser), then one core call (`verbs.FUNCTIONS`, or the notebook additions of
`magic_verbs`), and the result object is returned, so the magic and `jupyter-optimize`
cannot drift apart. The manual below is what `%optimize?` prints; the options of every verb
are appended to it from the parser.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Float, Int, List, TraitError, Unicode, default, validate

from .. import defaults
from ..errors import OptimizeError
from ..verbs import table
from ..verbs.table import CHART_KINDS  # noqa: F401 - what `%optimize chart --kind` draws
from .magic_args import (OptimizeUsageError, _HelpShown, expand_variables, make_quiet, pop_output_var,  # noqa: F401
                         restore)

MANUAL = """Optimize LLM inference from a notebook: `%optimize VERB [options] [-o VAR]`.

Load with `%load_ext jupyter_ext`. The verbs and their options are those of the
`jupyter-optimize` command line (listed at the end); every verb returns a result object
that the notebook shows as a table, and `-o VAR` also stores it in the variable VAR.

    %optimize models                      catalog models
    %optimize instances                   instance types and $/hour
    %optimize plan MODEL --precision awq-int4 --concurrency 8
    %optimize recipe list | show NAME | validate PATH | new NAME [--from BASE] [--save PATH]
    %optimize bench RECIPE [--baseline BASE] [--concurrency 1,2,4] [--prompts N]
                           [--max-tokens N] [--input-scale X] [--url URL] [--background]
                           [--rate 1,2,4 [--arrival poisson|constant]] [--sweep N] [--warmup N]
                           [--cooldown N] [--max-failed-share 0.5] [--workload-shape multi-turn
                           --turns T] [--shared-prefix TOKENS]
                           [--workload copy|open] [--dataset FILE [--dataset-sample N] [--seed S]]
                           [--slo ttft_p99=2s,tpot_p50=50ms] [--repeats N]
    %optimize bench adapters --adapters 4 --adapter-skew zipf:1.1
                                          requests spread over the recipe's LoRA adapters;
                                          latency per adapter in the table and the JSON
    %optimize prepare RECIPE              build its artifacts (AWQ, draft, LoRA adapters, compile cache)
    %optimize compare RESULT BASELINE_RESULT
    %optimize tune [MODEL] --slo tpot_p50=50ms [--instance local] [--recipes R ...] [--concurrency 1,2,4,8]
                           [--target-rps 5] [--output tuned.yaml] [--grid]
                                          cheapest blended $/1M meeting the SLO: ranked table,
                                          the winner's recipe YAML, deployment sizing
    %optimize report RESULT... [--output report.html]   one self-contained HTML page
    %optimize price RESULT [--instance ml.g5.2xlarge] [--discount 0.3]
    %optimize chart RESULT... [--kind dashboard|throughput|ttft|itl|price] [--output PNG]
    %optimize serve RECIPE                start a vLLM server and keep it (bench reuses it)
    %optimize stop [PID ...]              stop servers started here (all when no PID)
    %optimize panel                       the widget panel (model, recipe, benchmark, deploy, autoscale)

Deploy and autoscale (SageMaker calls use your AWS credentials, which are never shown):

    %optimize deploy RECIPE [--name N]    a local vLLM endpoint (/ping, /invocations, OpenAI API)
    %optimize deploy RECIPE --target sagemaker --instance-type ml.g5.xlarge [--role-arn ARN] --dry-run -o dry
                                          the exact requests, nothing sent (no role needed to look)
    %optimize deploy @dry --target sagemaker -o ep   make exactly the reviewed requests
    %optimize deploy RECIPE --target sagemaker --role-arn ARN [--instance-type T] [--region R]
    %optimize endpoints                   local endpoints, alive or dead
    %optimize invoke NAME "prompt" [--target sagemaker] [--max-tokens N] [--stream]
                     [--session new|ID [--close-session]]   sticky session (SessionId on InvokeEndpoint)
                     [--adapter NAME]     a LoRA adapter of the recipe answers
    %optimize undeploy NAME [--target sagemaker]   (or `undeploy @ep`: the target is known)
    %optimize autoscale attach|show|detach ENDPOINT [--min 1 --max 4 --target-value 5
                            --metric concurrency --scale-in-cooldown S --scale-out-cooldown S] [--dry-run]
    %optimize simulate [--ramp 0:1,600:3,900:6] [--target-value 5] [--max 20] [--result JSON]
                                          the policy under a traffic ramp, before paying:
                                          summary + timeline chart (`--chart PNG` saves it)
    %optimize simulate --routing random,least_outstanding,sticky [--replicas 4]
                                          routers compared on multi-turn traffic, with the
                                          assumptions, beside the seed's >20% claim

A recipe's `adapters:` section serves LoRA fine-tuned flavors of its model (vLLM multi-LoRA;
on SageMaker one inference component each, `--adapters-s3 s3://...`), and `deploy: {routing:
random}` sets the endpoint's RoutingStrategy (default least_outstanding_requests), and
`deploy: {sessions: true}` lets the container open sticky sessions.

SageMaker's managed optimization (requests checked against botocore's service model):

    %optimize optimize RECIPE --target sagemaker --instance-type ml.g5.12xlarge --dry-run -o opt
                                          CreateOptimizationJob from the recipe (quantize, compile,
                                          tensor parallel, EAGLE), then the deploy of its output
    %optimize optimize @opt --target sagemaker   run it: wait (progress bar) and deploy (needs
                                          --role-arn, --model-data-s3, --output-s3 when planned)
    %optimize recommend RECIPE --slo ttft_p99=2s --dry-run   an AI recommendation job from the SLO
    %optimize export RECIPE [--output FILE.py] -o code   the same job as SageMaker SDK code

A cell that starts with `%%optimize` holds a recipe as YAML; it is validated and returned
as a Recipe (`%%optimize --save my.yaml -o rec` also writes it, atomically):

    %%optimize --save my-ngram.yaml -o rec
    name: my-ngram
    engine: {enforce_eager: true, max_model_len: 2048}
    speculative: {method: ngram, num_tokens: 4}

Python variables: the line is NOT expanded the usual IPython way (`$x` and `{x}` stay as
written, because recipe paths and YAML may contain them). To pass a variable, write `@name`
(or `@name.attribute`) as a whole argument: `%optimize compare @ngram_res @base_res`,
`%optimize bench --url @server.base_url`. Strings and numbers are inserted as text, a list
of numbers as `1,2,4`, other objects (Recipe, BenchResult) are passed as they are. Write
`@@` for a literal `@` at the start of an argument.

Benchmarks: a progress bar and the table of finished levels update while a benchmark runs.
Interrupting the kernel stops it after the requests in flight; the finished levels are kept
(in the saved JSON and in `-o VAR`). With `--background` the magic returns at once with a
handle (`.result`, `.levels`, `.done`, `.stop()`, `.wait()`) whose display keeps updating.
A benchmark reuses a server started with `%optimize serve` for the same recipe. An endpoint
that is unreachable, refuses (HTTP 4xx, wrong model) or does not stream fails the cell at its
first request; a level with more than `--max-failed-share` failed requests fails the cell
after the run, the result kept in `-o VAR` (or `_optimize_failed`).

Settings, changed once per session with `%config`:

    %config OptimizeMagics.results_dir = "results"        where results JSON go
    %config OptimizeMagics.default_instance = "ml.g5.xlarge"   instance that prices results
    %config OptimizeMagics.default_concurrency = [1, 2, 4]
    %config OptimizeMagics.local_rate = 0.25               USD/hour of this machine

A mistake (unknown model, impossible stack, bad option) raises UsageError with the named
error's message, so the cell fails, and so does a notebook run under nbmake.
"""


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def build_magic_parser() -> argparse.ArgumentParser:
    """The table's parser for the notebook face (errors raise OptimizeUsageError)."""
    parser = table.build_parser(table.MAGIC, prog="%optimize")
    for p in (parser, *_subparsers(parser).choices.values()):
        make_quiet(p)
    return parser


def verb_reference() -> str:
    """Every verb's usage and options, from the parser, for the manual."""
    sub = _subparsers(build_magic_parser())
    return "\n".join(p.format_help() for p in sub.choices.values())


@magics_class
class OptimizeMagics(Magics):
    """`%optimize` / `%%optimize`; settings are traitlets, so `%config` changes them."""

    results_dir = Unicode(help="where benchmark results (JSON) are written").tag(config=True)
    default_instance = Unicode(defaults.DEFAULT_INSTANCE,
                               help="instance type whose rate prices results ('local' = this machine)").tag(config=True)
    default_concurrency = List(Int(), default_value=list(defaults.DEFAULT_CONCURRENCY), minlen=1,
                               help="concurrency levels of a benchmark when --concurrency is not given").tag(config=True)
    local_rate = Float(None, allow_none=True, help="USD/hour of this machine (instance 'local')").tag(config=True)

    def __init__(self, shell=None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.jobs: list[Any] = []  # background benchmarks started here

    @default("results_dir")
    def _default_results_dir(self) -> str:
        return defaults.results_dir()

    @validate("default_instance")
    def _check_instance(self, proposal: Any) -> str:
        from ..catalog import get_instance

        try:
            get_instance(proposal["value"])
        except OptimizeError as e:
            raise TraitError(str(e)) from None
        return proposal["value"]

    @validate("default_concurrency")
    def _check_concurrency(self, proposal: Any) -> list[int]:
        if any(c < 1 for c in proposal["value"]):
            raise TraitError(f"concurrency levels must be >= 1 (got {proposal['value']})")
        return proposal["value"]

    # -- entry -----------------------------------------------------------------------------
    @no_var_expand
    @line_cell_magic
    def optimize(self, line: str, cell: str | None = None) -> Any:
        try:
            tokens = shlex.split(line)
        except ValueError as e:
            raise OptimizeUsageError(f"%optimize: cannot split the line into arguments ({e}); check the quotes") from None
        tokens, var = pop_output_var(tokens)
        tokens, objects = expand_variables(tokens, self.shell.user_ns)
        try:
            if cell is not None:
                from .magic_verbs import cell_recipe

                result = cell_recipe(tokens, objects, cell)
            else:
                result = self._line(tokens, objects, var)
        except _HelpShown:
            return None
        except OptimizeError as e:
            raise OptimizeUsageError(f"{type(e).__name__}: {e}") from None
        if var is not None:
            self.shell.user_ns[var] = result
        return result

    def _line(self, tokens: list[str], objects: dict[str, Any], var: str | None) -> Any:
        from .. import verbs
        from .magic_verbs import NOTEBOOK_VERBS

        parser = build_magic_parser()
        if not tokens:
            parser.print_help()
            return None
        self._apply_settings(parser)
        args = restore(parser.parse_args(tokens), objects)
        args.output_var = var
        if args.local_rate is not None:
            from ..catalog import set_local_rate

            set_local_rate(args.local_rate)
        if args.verb in NOTEBOOK_VERBS:
            return NOTEBOOK_VERBS[args.verb](self, args)
        return verbs.FUNCTIONS[args.verb](**table.call_args(args, table.MAGIC))

    def _apply_settings(self, parser: argparse.ArgumentParser) -> None:
        """Make the session's settings the defaults of the options they stand for."""
        if self.local_rate is not None:
            from ..catalog import set_local_rate

            set_local_rate(self.local_rate)
        verbs = _subparsers(parser).choices
        verbs["bench"].set_defaults(concurrency=list(self.default_concurrency), instance=self.default_instance,
                                    results_dir=self.results_dir)
        verbs["price"].set_defaults(instance=self.default_instance)
        verbs["tune"].set_defaults(instance=self.default_instance, results_dir=self.results_dir)

    # -- what this notebook started ------------------------------------------------------
    @property
    def servers(self) -> dict[int, tuple[Any, Any]]:
        """pid -> (recipe, server) of the servers `serve` keeps (the engine's one registry)."""
        from ..engine import registry

        return {e.server.pid: (e.recipe, e.server) for e in registry.kept()}

    def stop_all(self) -> list[Any]:
        """Stop every background benchmark and server started from this notebook."""
        from ..engine import registry

        for job in self.jobs:
            job.stop()
        return registry.stop()


OptimizeMagics.optimize.__doc__ = MANUAL + "\nVerbs and options\n-----------------\n" + verb_reference()


def load_ipython_extension(ipython) -> None:
    """Register the magics; `Magics.__init__` adds the instance to shell.configurables."""
    ipython.register_magics(OptimizeMagics(shell=ipython))


def unload_ipython_extension(ipython) -> None:
    """Stop what the notebook started; the magics themselves stay registered."""
    magics = ipython.magics_manager.registry.get("OptimizeMagics")
    if magics is not None:
        magics.stop_all()
