"""`jupyter-optimize <verb>`: the command-line face.

The parser comes from the verb table (`verbs.table`, shared with `%optimize`); each verb is
parse -> one core call (`verbs.FUNCTIONS`) -> print the result object. A named error exits
with status 2 and its message (a benchmark whose endpoint is unreachable, refuses or does not
stream fails so at its first request), an interrupt with 130 (finished levels are already
saved), a benchmark with a failed level (or otherwise incomplete), or a tune where nothing
met the SLO, with 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from .. import defaults
from ..errors import OptimizeError
from ..verbs import table

DEFAULT_CHART = "results/chart.png"


def build_parser() -> argparse.ArgumentParser:
    return table.build_parser(table.CLI, prog="jupyter-optimize", description=__doc__)


def _bench(args: argparse.Namespace) -> int:
    from .. import charts
    from ..bench import BenchResult, Comparison
    from ..verbs import run

    spec = run.bench_spec(args.recipe, **table.bench_options(args, table.CLI))
    try:
        out = run.bench(spec)
    except KeyboardInterrupt:
        print("\ninterrupted: the server was stopped; finished levels are saved in "
              f"{spec.results_dir or defaults.results_dir()}/", file=sys.stderr)
        return 130
    results: list[BenchResult] = [out.baseline, out.recipe] if isinstance(out, Comparison) else [out]
    for r in results:
        print(r, f"\nsaved: {r.path}\n")
    if isinstance(out, Comparison):
        from ..bench.result import format_table

        print(f"{out.recipe.name} / {out.baseline.name}:\n{format_table(out.rows)}")
    if not args.no_chart:
        png = args.chart or str(Path(results[-1].path).with_suffix(".png"))
        charts.save(results, png)
        print(f"chart: {png}")
    failure = run.bench_failure(out)
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    return 0 if all(r.status == "complete" for r in results) else 1


def _serve(args: argparse.Namespace) -> int:
    from ..verbs import run

    srv = run.serve(args.recipe, host=args.host, port=args.port)
    print(f"serving {srv.command.served_model_name} at {srv.base_url} (pid {srv.pid}); Ctrl-C stops it")
    try:
        while srv.alive():
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from .. import verbs

    args = build_parser().parse_args(argv)
    try:
        if args.local_rate is not None:
            from ..catalog import set_local_rate

            set_local_rate(args.local_rate)
        if args.verb == "bench":
            return _bench(args)
        if args.verb == "serve":
            return _serve(args)
        kwargs = table.call_args(args, table.CLI)
        if args.verb == "chart":
            kwargs["output"] = kwargs.get("output") or DEFAULT_CHART
        out = verbs.FUNCTIONS[args.verb](**kwargs)
        if args.verb == "chart":
            out = f"chart: {out}"
        elif args.verb == "recipe" and args.action == "validate":
            out = "\n".join(f"ok: {p} -> {r}" for p, r in zip(args.paths, out if isinstance(out, list) else [out]))
        elif args.verb == "recipe" and args.action == "show":
            out = "\n---\n".join(r.to_yaml() for r in (out if isinstance(out, list) else [out]))
        elif args.verb == "undeploy" and args.target == "local":
            out = f"stopped {out.name}"
        print(out)
        if args.verb == "tune" and getattr(out, "winner", True) is None:
            return 1  # searched, but nothing met the SLO
        return 0
    except OptimizeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
