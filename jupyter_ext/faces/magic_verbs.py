"""What only a notebook adds to a verb: a live display, an inline figure, the panel.

Every other `%optimize` verb is the core function itself (`verbs.FUNCTIONS`), called with
the options the shared table parsed. The verbs here still make one core call each; they only
add what a notebook has and a terminal has not: `bench` runs on a worker thread behind a
display that updates itself (the kernel's event loop forbids asyncio.run in a cell), `chart`
registers the PNG formatter so a returned Figure shows inline, `serve`/`deploy` say what
they are waiting for, `panel` builds the widgets. Loaded on the first verb, not at %load_ext.
"""

from __future__ import annotations

import argparse
import html
import threading
from typing import TYPE_CHECKING, Any

from IPython.display import display, update_display

from ..bench.background import BackgroundBenchmark
from ..verbs import run, table
from ..verbs.results import as_recipe, given_plan

if TYPE_CHECKING:
    from .magics import OptimizeMagics


class LiveBenchmark(BackgroundBenchmark):
    """A BackgroundBenchmark whose notebook display updates itself as levels finish."""

    def __init__(self, spec: Any, *, heartbeat_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(spec, on_update=self._refresh, **kwargs)
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


def verb_bench(m: "OptimizeMagics", a: argparse.Namespace) -> Any:
    """The spec from the shared table, run on a worker thread; wait for it unless
    --background. An interrupt stops it and keeps the finished levels."""
    spec = run.bench_spec(a.recipe, **table.bench_options(a, table.MAGIC))
    in_kernel = getattr(m.shell, "kernel", None) is not None
    job = LiveBenchmark(spec, heartbeat_s=5.0 if in_kernel else None)
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
        run.chart(job.results, output=a.chart)
    failure = run.bench_failure(result)
    if failure is not None:  # the cell fails; what was measured stays in the namespace
        var = a.output_var or "_optimize_failed"
        m.shell.user_ns[var] = result
        raise type(failure)(f"{failure} (the result is in `{var}`)", result)
    return result


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
    show_figures_as_png(m.shell)
    return run.chart(**table.call_args(a, table.MAGIC))


def verb_serve(m: "OptimizeMagics", a: argparse.Namespace) -> Any:
    def starting(recipe: Any) -> None:
        print(f"starting vLLM for recipe {recipe.name} (a minute or more on a CPU) ...")

    srv = run.serve(a.recipe, host=a.host, port=a.port, on_start=starting)
    print(f"serving {srv.command.served_model_name} at {srv.base_url} (pid {srv.pid}); "
          f"`%optimize stop {srv.pid}` stops it")
    return srv


def verb_deploy(m: "OptimizeMagics", a: argparse.Namespace) -> Any:
    from ..verbs import deploy

    if a.target == "local" and given_plan(a.recipe) is None and not a.dry_run:
        print(f"starting vLLM for recipe {as_recipe(a.recipe).name} (a minute or more on a CPU) ...")
    return deploy.deploy(**table.call_args(a, table.MAGIC))


def verb_panel(m: "OptimizeMagics", a: argparse.Namespace) -> Any:
    from widgets import OptimizePanel

    return OptimizePanel(results_dir=m.results_dir, instance=m.default_instance,
                         concurrency=list(m.default_concurrency))


def cell_recipe(tokens: list[str], objects: dict[str, Any], cell: str) -> Any:
    """`%%optimize [--save [PATH]] [--target local|sagemaker]`: the cell is a recipe in YAML."""
    from ..recipes import check_stack, recipe_from_yaml
    from .magic_args import make_quiet, restore

    parser = argparse.ArgumentParser(prog="%%optimize", add_help=True)
    parser.add_argument("--save", nargs="?", const="", default=None,
                        help="write the recipe YAML to PATH (default NAME.yaml in the working folder)")
    parser.add_argument("--target", default="local", choices=["local", "sagemaker"])
    make_quiet(parser)
    args = restore(parser.parse_args(tokens), objects)
    recipe = recipe_from_yaml(cell, source="in the %%optimize cell")
    check_stack(recipe, args.target)
    if args.save is not None:
        recipe.save(args.save or f"{recipe.name}.yaml")
    return recipe


# The verbs a notebook adds to; the others are verbs.FUNCTIONS[verb] as they are.
NOTEBOOK_VERBS = {"bench": verb_bench, "chart": verb_chart, "serve": verb_serve, "deploy": verb_deploy,
                  "panel": verb_panel}
