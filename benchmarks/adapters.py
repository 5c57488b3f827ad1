"""One endpoint serving N LoRA adapters against N single-model endpoints, at equal traffic.

The seed promises "thousands of fine-tuned flavors of a model on the same endpoint". This
measures what sharing one endpoint costs and saves, with N adapters the toolkit makes offline
(`prepare`: peft LoRA, rank 8, one flavor of documentation text each):

  multi   one vLLM server with all N adapters (--enable-lora, max_loras N); the load is C
          concurrent requests spread uniformly over the adapters (request model = adapter).
  single  N endpoints, each serving one adapter, each getting its 1/N share of the same load
          (C/N concurrent requests, P/N prompts). Each endpoint is one instance; this host
          runs them one after another (each alone on the machine, as on its own instance).

Figures (vLLM definitions; blended price with input:output 3:1 at the --instance rate):
    output tok/s        multi: the endpoint's; single: the sum over the N endpoints
    TTFT / E2E p50, p99 over every request of the arm
    blended $/1M        per endpoint: (1 - discount) x usd_per_hour / (total_throughput_tok_s x 3600 / 1e6) / 4,
                        total_throughput_tok_s = (1 / p50 TPOT) x concurrency; the single arm's
                        figure is the traffic-weighted mean over its N endpoints (N instances)
    $/h per adapter     multi: usd_per_hour / N; single: usd_per_hour (one instance each)
Goal (issue 15): with 8 adapters, multi's blended $ per adapter <= 1/4 of single's, p50 within 1.3x.

--rate R measures at a traffic level instead of a concurrency: multi gets R req/s of Poisson
arrivals over all N adapters (--concurrency only caps requests in flight), so each adapter's
traffic is R/N req/s. Each single endpoint would get R/N req/s too; it is measured at
concurrency 1 with nothing else in flight, which is the lowest latency it can reach at any
rate (a lower bound that favours the single arm), since waiting out Poisson gaps of N/R
seconds one endpoint after another would take hours. Prices are at the served traffic: the
ANCHORS formula with the mean number of requests in flight as its concurrency (Little's law:
req/s x mean E2E; for a single endpoint R/N x its mean E2E).

    python benchmarks/adapters.py                       # 8 adapters, C = 8, 64 prompts
    python benchmarks/adapters.py --rate 0.03 --prompts 16   # open loop, 0.03 req/s in all (under capacity)
    python benchmarks/adapters.py --quick               # 2 adapters, a few short prompts: checks the script
JSON goes to benchmarks/results/adapters.json (--out); the markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from jupyter_ext.bench import run_benchmark  # noqa: E402
from jupyter_ext.bench.result import machine_description, package_versions  # noqa: E402
from jupyter_ext.catalog import get_instance  # noqa: E402
from jupyter_ext.engine.prepare import prepare  # noqa: E402
from jupyter_ext.pricing import blended_price  # noqa: E402
from jupyter_ext.recipes import recipe_from_dict  # noqa: E402
from jupyter_ext.techniques.adapter_train import FLAVORS  # noqa: E402


def adapter_recipe(name: str, flavors: list[str], steps: int, max_model_len: int):
    return recipe_from_dict({"name": name, "engine": {"max_model_len": max_model_len, "enforce_eager": True},
                             "adapters": {"max_lora_rank": 8, "max_loras": len(flavors),
                                          "modules": {f: {"flavor": f, "steps": steps} for f in flavors}}})


def _pooled(results) -> dict:
    samples = [s for r in results for lv in r.levels for s in lv.samples if s.ok]
    ttft = sorted(s.ttft_s for s in samples)
    e2e = sorted(s.e2el_s for s in samples)
    q = lambda v, p: statistics.quantiles(v, n=100, method="inclusive")[p - 1] if len(v) > 1 else v[0]  # noqa: E731
    return {"requests": len(samples), "ttft_p50_s": q(ttft, 50), "ttft_p99_s": q(ttft, 99),
            "e2e_p50_s": q(e2e, 50), "e2e_p99_s": q(e2e, 99)}


def _blended(result, usd_per_hour: float, concurrency: float, discount: float) -> float:
    """ANCHORS blended $/1M on the level's p50 TPOT at `concurrency` (open loop: the mean in
    flight, by Little's law)."""
    return blended_price(usd_per_hour, result.levels[0].metrics.tpot.p50, concurrency, discount).blended_usd_per_1M


def _mean_e2e(result) -> float:
    return statistics.fmean(s.e2el_s for s in result.levels[0].samples if s.ok)


def _in_flight(result) -> float:
    return result.levels[0].metrics.request_throughput * _mean_e2e(result)


def run(n: int, concurrency: int, prompts: int, max_tokens: int, input_scale: float, steps: int,
        instance: str, discount: float, tmp: str, rate: float | None = None) -> dict:
    flavors = list(FLAVORS)[:n]
    usd_h = get_instance(instance).usd_per_hour
    common = dict(results_dir=tmp, progress=False, max_tokens=max_tokens, input_scale=input_scale, warmup=0,
                  instance=instance, discount=discount)
    multi_recipe = adapter_recipe(f"lora-{n}", flavors, steps, 2048)
    print(prepare(multi_recipe, warm=False), flush=True)  # trains (or finds) all N adapters first
    t = time.monotonic()
    load = {"request_rate": rate, "arrival": "poisson"} if rate else {}
    multi = run_benchmark(multi_recipe, concurrency=[concurrency], num_prompts=prompts, adapters=n,
                          adapter_skew="uniform", **load, **common)
    multi_s = time.monotonic() - t
    share_c, share_p = max(1, round(concurrency / n)), max(1, round(prompts / n))
    if rate:  # each endpoint alone at concurrency 1: its latency floor at its R/N share
        share_c, share_p = 1, max(2, min(share_p, 4))
    singles = []
    for f in flavors:
        singles.append(run_benchmark(adapter_recipe(f"lora-single-{f}", [f], steps, 2048), concurrency=[share_c],
                                     num_prompts=share_p, adapters=1, **common))
        print(f"single {f}: {singles[-1].rows()[0]['out tok/s']:.1f} out tok/s", flush=True)
    multi_fig = {**_pooled([multi]), "out_tok_s": multi.levels[0].metrics.output_throughput,
                 "blended_usd_per_1M": _blended(multi, usd_h, _in_flight(multi) if rate else concurrency, discount),
                 "instances": 1, "usd_per_hour_per_adapter": usd_h / n, "req_s": multi.levels[0].metrics.request_throughput,
                 "mean_in_flight": _in_flight(multi), "per_adapter": multi.levels[0].per_adapter, "wall_s": multi_s}
    single_in_flight = [rate / n * _mean_e2e(r) if rate else _in_flight(r) for r in singles]
    single_blended = [_blended(r, usd_h, c if rate else share_c, discount) for r, c in zip(singles, single_in_flight)]
    served = sum(r.levels[0].metrics.output_throughput for r in singles)
    if rate:  # at equal traffic the N endpoints serve R/N req/s each: R x mean output tokens in all
        served = rate * statistics.fmean(s.output_tokens or 0 for r in singles for s in r.levels[0].samples if s.ok)
    single_fig = {**_pooled(singles), "out_tok_s": served,
                  "blended_usd_per_1M": statistics.fmean(single_blended), "instances": n,
                  "usd_per_hour_per_adapter": usd_h, "req_s": sum(r.levels[0].metrics.request_throughput for r in singles),
                  "mean_in_flight": statistics.fmean(single_in_flight),
                  "per_adapter": {f: r.levels[0].per_adapter[f] for f, r in zip(flavors, singles)}}
    return {"adapters": n, "flavors": flavors, "concurrency": concurrency, "prompts": prompts,
            "single_share": {"concurrency": share_c, "prompts": share_p}, "instance": instance,
            "load": {"mode": "poisson", "request_rate": rate, "per_adapter": rate / n,
                     "single_arm": "concurrency 1, alone (its latency floor at any rate)"} if rate else
                    {"mode": "closed", "concurrency": concurrency},
            "usd_per_hour": usd_h, "discount": discount, "multi": multi_fig, "single": single_fig,
            "ratios": {"blended_multi_over_single": multi_fig["blended_usd_per_1M"] / single_fig["blended_usd_per_1M"],
                       "e2e_p50_multi_over_single": multi_fig["e2e_p50_s"] / single_fig["e2e_p50_s"],
                       "out_tok_s_multi_over_single": multi_fig["out_tok_s"] / single_fig["out_tok_s"]}}


def table(out: dict) -> str:
    lines = ["| arm | instances | out tok/s | TTFT p50 / p99 s | E2E p50 / p99 s | blended $/1M | $/h per adapter |",
             "|---|---|---|---|---|---|---|"]
    for arm in ("multi", "single"):
        f = out[arm]
        lines.append(f"| {arm} ({out['adapters']} adapters) | {f['instances']} | {f['out_tok_s']:.1f} | "
                     f"{f['ttft_p50_s']:.2f} / {f['ttft_p99_s']:.2f} | {f['e2e_p50_s']:.2f} / {f['e2e_p99_s']:.2f} | "
                     f"{f['blended_usd_per_1M']:.3f} | {f['usd_per_hour_per_adapter']:.3f} |")
    r, ld = out["ratios"], out["load"]
    if ld["mode"] == "poisson":
        lines.append(f"\nload: Poisson {ld['request_rate']:.3g} req/s in all ({ld['per_adapter']:.3g} per adapter); "
                     f"multi achieved {out['multi']['req_s']:.3g} req/s, {out['multi']['mean_in_flight']:.2f} in flight "
                     f"on average; single: {ld['single_arm']}, {out['single']['mean_in_flight']:.2f} in flight at its share")
    lines.append(f"\nmulti / single: blended $ {r['blended_multi_over_single']:.2f}x (goal <= 0.25), "
                 f"E2E p50 {r['e2e_p50_multi_over_single']:.2f}x (goal <= 1.3), "
                 f"out tok/s {r['out_tok_s_multi_over_single']:.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapters", type=int, default=8, help=f"1..{len(FLAVORS)}")
    ap.add_argument("--concurrency", type=int, default=8,
                    help="total concurrent requests (split N ways for single); with --rate, the in-flight cap")
    ap.add_argument("--rate", type=float, default=None,
                    help="open loop: total Poisson req/s (multi), R/N per single endpoint")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--input-scale", type=float, default=0.25)
    ap.add_argument("--steps", type=int, default=12, help="fine-tune steps per made adapter")
    ap.add_argument("--instance", default="ml.g5.2xlarge", help="catalog instance whose rate prices both arms")
    ap.add_argument("--discount", type=float, default=0.0)
    ap.add_argument("--quick", action="store_true", help="2 adapters, 4 prompts, 8 tokens: checks the script")
    ap.add_argument("--out", default=None, help="default results/adapters.json (adapters_rate.json with --rate)")
    a = ap.parse_args(argv)
    if a.quick:
        a.adapters, a.concurrency, a.prompts, a.max_tokens, a.input_scale, a.steps = 2, 2, 4, 8, 0.05, 4
    if not 1 <= a.adapters <= len(FLAVORS):
        ap.error(f"--adapters must be 1..{len(FLAVORS)} (one flavor each)")
    with tempfile.TemporaryDirectory() as tmp:
        out = run(a.adapters, a.concurrency, a.prompts, a.max_tokens, a.input_scale, a.steps, a.instance,
                  a.discount, tmp, rate=a.rate)
    out.update({"command": " ".join(["python", "benchmarks/adapters.py", *(argv or sys.argv[1:])]),
                "date": time.strftime("%Y-%m-%d"), "machine": machine_description(), "versions": package_versions()})
    a.out = a.out or str(HERE / "results" / ("adapters_rate.json" if a.rate else "adapters.json"))
    if not a.quick:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=1))
    print(table(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
