"""What each `%optimize` verb does: one call into the core, the result object returned.

Kept apart from magics.py so that `%load_ext jupyter_ext` imports only the parser and the
settings; this module (and, inside each verb, the core it needs) loads on the first verb.
"""

from __future__ import annotations

import argparse
import html
import threading
from typing import TYPE_CHECKING, Any

from IPython.display import display, update_display

from .bench.background import BackgroundBenchmark
from .cli import bench_endpoint_options
from .errors import OptimizeError, ResultFileError

if TYPE_CHECKING:
    from .magics import OptimizeMagics


# -- arguments that may be objects (from @name) or paths ---------------------------------
def as_recipe(value: Any) -> Any:
    """A Recipe from a Recipe object, a YAML path or a shipped recipe name."""
    from .recipes import Recipe, load_recipe

    return value if isinstance(value, Recipe) else load_recipe(str(value))


def as_result(value: Any) -> Any:
    """A BenchResult from a result object, a finished background benchmark, or a JSON path."""
    from .bench import BenchResult, Comparison

    if isinstance(value, BackgroundBenchmark):
        value = value.result
    if isinstance(value, Comparison):
        value = value.recipe
    if isinstance(value, BenchResult):
        return value
    if value is None:
        raise ResultFileError("that benchmark has no result yet; wait for it (.wait()) or pass a results JSON path")
    return BenchResult.load(str(value))


class RecipeList(list):
    """The shipped recipes, shown as one block per recipe."""

    def __str__(self) -> str:
        return "\n".join(str(r) for r in self)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return "".join(r._repr_html_() for r in self)


# -- catalog ---------------------------------------------------------------------------
def verb_models(m: "OptimizeMagics", a: argparse.Namespace) -> Any:
    from .catalog import list_models

    return list_models()


def verb_instances(m: "OptimizeMagics", a: argparse.Namespace) -> Any:
    from .catalog import list_instances

    return list_instances()


def verb_plan(m: "OptimizeMagics", a: argparse.Namespace) -> Any:
    from .planning import plan

    return plan(a.model, precision=a.precision, concurrency=a.concurrency,
                input_tokens=a.input_tokens, output_tokens=a.output_tokens)


# -- recipes ---------------------------------------------------------------------------
def verb_recipe(m: "OptimizeMagics", a: argparse.Namespace) -> Any:
    from .recipes import check_stack, list_recipes, recipe_from_dict

    if a.action == "list":
        return RecipeList(list_recipes())
    if not a.paths:
        what = "a name for the new recipe" if a.action == "new" else "at least one recipe path or name"
        raise OptimizeError(f"recipe {a.action} needs {what}")
    if a.action == "new":
        data = {**as_recipe(a.base).to_dict(), "name": a.paths[0], "description": f"made from {a.base}"}
        recipes = [recipe_from_dict(data, source=f"recipe new {a.paths[0]}")]
    else:
        recipes = [as_recipe(p) for p in a.paths]
    for r in recipes:
        check_stack(r, a.target)
    if a.save:
        if len(recipes) != 1:
            raise OptimizeError("--save writes one recipe; give one recipe")
        recipes[0].save(a.save)
    return recipes[0] if len(recipes) == 1 else RecipeList(recipes)


def cell_recipe(m: "OptimizeMagics", tokens: list[str], objects: dict[str, Any], cell: str) -> Any:
    """`%%optimize [--save [PATH]] [--target local|sagemaker]`: the cell is a recipe in YAML."""
    from .magics import _make_quiet, restore
    from .recipes import check_stack, recipe_from_yaml

    parser = argparse.ArgumentParser(prog="%%optimize", add_help=True)
    parser.add_argument("--save", nargs="?", const="", default=None,
                        help="write the recipe YAML to PATH (default NAME.yaml in the working folder)")
    parser.add_argument("--target", default="local", choices=["local", "sagemaker"])
    _make_quiet(parser)
    args = restore(parser.parse_args(tokens), objects)
    recipe = recipe_from_yaml(cell, source="in the %%optimize cell")
    check_stack(recipe, args.target)
    if args.save is not None:
        recipe.save(args.save or f"{recipe.name}.yaml")
    return recipe


# -- benchmarks ------------------------------------------------------------------------
class LiveBenchmark(BackgroundBenchmark):
    """A BackgroundBenchmark whose notebook display updates itself as levels finish."""

    def __init__(self, *args: Any, heartbeat_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, on_update=self._refresh, **kwargs)
        self.display_ids: list[str] = []
        self.compact_when_done = False
        self._heartbeat_s = heartbeat_s
        self._beating = False

    def _bundle(self) -> dict[str, str]:
        if self.done and self.compact_when_done and self.error is None:
            return {"text/plain": self._headline(), "text/html": f"<i>{html.escape(self._headline())}</i>"}
        return {"text/plain": str(self), "text/html": self._repr_html_()}

    def _ipython_display_(self) -> None:
        handle = display(self._bundle(), raw=True, display_id=True)
        if handle is not None:
            self.display_ids.append(handle.display_id)
        if self._heartbeat_s and not self.done and not self._beating:
            self._beating = True
            self._start_heartbeat()

    def _refresh(self, _job: BackgroundBenchmark | None = None) -> None:
        for display_id in self.display_ids:
            update_display(self._bundle(), raw=True, display_id=display_id)

    def _start_heartbeat(self) -> None:
        """Refresh the elapsed time between levels (a level can take minutes on a CPU)."""
        def beat() -> None:
            while not self._done.wait(self._heartbeat_s):
                self._refresh()

        threading.Thread(target=beat, daemon=True, name="jupyter-optimize-heartbeat").start()


def _bench_job(m: "OptimizeMagics", a: argparse.Namespace) -> LiveBenchmark:
    if a.recipe is None and a.url is None:
        raise OptimizeError("bench needs a recipe (e.g. baseline, or recipes/baseline.yaml) or --url")
    recipe = as_recipe(a.recipe) if a.recipe is not None else None
    baseline = as_recipe(a.baseline) if a.baseline is not None else None
    in_kernel = getattr(m.shell, "kernel", None) is not None
    return LiveBenchmark(
        recipe, baseline=baseline, url=a.url, model=a.model,
        server=None if a.url else m.served(recipe), baseline_server=m.served(baseline),
        heartbeat_s=5.0 if in_kernel else None, concurrency=a.concurrency, num_prompts=a.prompts,
        max_tokens=a.max_tokens, input_scale=a.input_scale, request_rate=a.rate, warmup=a.warmup,
        instance=a.instance, discount=a.discount, results_dir=a.results_dir, api=a.api, progress=True,
        **bench_endpoint_options(a))


def verb_bench(m: "OptimizeMagics", a: argparse.Namespace) -> Any:
    """Run on a worker thread (the kernel's event loop forbids asyncio.run here); wait for it
    unless --background. An interrupt stops it and keeps the finished levels."""
    job = _bench_job(m, a)
    job.start()
    m.jobs.append(job)
    if a.background:
        return job
    job.compact_when_done = True
    display(job)
    try:
        result = job.wait()
    except KeyboardInterrupt:
        if job.result is not None:
            var = a.output_var or "_optimize_interrupted"
            m.shell.user_ns[var] = job.result
            saved = ", ".join(str(r.path) for r in job.results)
            print(f"interrupted: the finished levels are kept in `{var}` and saved in {saved}")
        raise
    if a.chart:
        save_chart(job.results, a.chart)
    return result


def verb_compare(m: "OptimizeMagics", a: argparse.Namespace) -> Any:
    from .bench import Comparison

    return Comparison.of(as_result(a.recipe_result), as_result(a.baseline_result))


def verb_price(m: "OptimizeMagics", a: argparse.Namespace) -> Any:
    from .pricing import blended_price, price_levels

    if a.result is not None:
        return price_levels(as_result(a.result), instance=a.instance, discount=a.discount)
    if None in (a.usd_per_hour, a.itl_ms, a.concurrency):
        raise OptimizeError("price needs a result (file or @variable), or all of --usd-per-hour, --itl-ms "
                            "and --concurrency")
    return blended_price(a.usd_per_hour, a.itl_ms / 1000.0, a.concurrency, a.discount)


# -- charts ----------------------------------------------------------------------------
def draw(results: list[Any], kind: str = "dashboard", figure: Any = None) -> Any:
    from . import charts

    return charts.figure(results, kind, figure)


def save_chart(results: list[Any], path: str, kind: str = "dashboard") -> Any:
    from . import charts

    return charts.save(results, path, kind)


def show_figures_as_png(shell: Any) -> None:
    """Let the notebook show a returned Figure as an image. matplotlib's inline backend
    registers this when pyplot is imported; our charts do not use pyplot (so that no backend
    is switched and nothing is shown twice), so register it ourselves unless one exists."""
    from IPython.core.pylabtools import print_figure
    from matplotlib.figure import Figure

    png = shell.display_formatter.formatters["image/png"]
    try:
        png.lookup_by_type(Figure)
    except KeyError:
        png.for_type(Figure, lambda fig: print_figure(fig, "png"))


def verb_chart(m: "OptimizeMagics", a: argparse.Namespace) -> Any:
    results = [as_result(r) for r in a.results]
    show_figures_as_png(m.shell)
    return save_chart(results, a.output, a.kind) if a.output else draw(results, a.kind)


# -- servers ---------------------------------------------------------------------------
def verb_serve(m: "OptimizeMagics", a: argparse.Namespace) -> Any:
    from . import defaults
    from .engine import server_for_recipe

    recipe = as_recipe(a.recipe)
    running = m.served(recipe)
    if running is not None:
        return running
    srv = server_for_recipe(recipe, host=a.host, port=a.port, start_timeout_s=defaults.DEFAULT_START_TIMEOUT_S)
    print(f"starting vLLM for recipe {recipe.name} (log: {srv.log_path}) ...")
    srv.start()  # blocks until /health answers; an interrupt stops the server
    m.servers[srv.pid] = (recipe, srv)
    print(f"serving {srv.command.served_model_name} at {srv.base_url} (pid {srv.pid}, "
          f"ready after {srv.ready_after_s:.0f} s); `%optimize stop {srv.pid}` stops it")
    return srv


def verb_stop(m: "OptimizeMagics", a: argparse.Namespace) -> Any:
    from .magics import OptimizeUsageError

    if not a.pids:
        return m.stop_all()
    unknown = [p for p in a.pids if p not in m.servers]
    if unknown:
        known = ", ".join(str(p) for p in m.servers) or "none"
        raise OptimizeUsageError(f"no server with pid {unknown[0]} was started from this notebook (running: {known})")
    stopped = []
    for pid in a.pids:
        _, srv = m.servers.pop(pid)
        srv.stop()
        stopped.append(srv)
    return stopped


def verb_panel(m: "OptimizeMagics", a: argparse.Namespace) -> Any:
    from widgets import OptimizePanel

    return OptimizePanel(results_dir=m.results_dir, instance=m.default_instance,
                         concurrency=list(m.default_concurrency))


def verb_prepare(m: "OptimizeMagics", a: argparse.Namespace) -> Any:
    """Build the recipe's artifacts ahead of deployment; returns the PrepareReport."""
    from .techniques.prepare import prepare

    return prepare(as_recipe(a.recipe), warm=not a.no_warm)


# -- deploy, endpoints, undeploy, invoke, autoscale, simulate: see magics_deploy ----------
from .magics_deploy import (verb_autoscale, verb_deploy, verb_endpoints, verb_invoke,  # noqa: E402,F401
                            verb_simulate, verb_undeploy)
