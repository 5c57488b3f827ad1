"""A timeline chart of one fleet simulation: load, capacity and the alarms that moved it.

Reading it left to right shows the autoscaling story: arrivals rise, in-flight requests
pile up, a scale-out alarm fires, and only launch-delay later does InService capacity
follow. matplotlib is imported inside the function so the simulation itself does not
need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from jupyter_ext.autoscale.sim_result import SimulationResult

_ALARM_STYLE = {"scale-out": ("tab:red", "--"), "scale-in": ("tab:blue", ":")}


def _capacity_steps(result: "SimulationResult") -> tuple[list[float], list[int], list[int]]:
    """(times, InService, InService + pending) as step series ending at the run's end."""
    ts, in_service, total = [], [], []
    for t, n_in, n_pending, _ in result.capacity:
        ts.append(t / 60.0)
        in_service.append(n_in)
        total.append(n_in + n_pending)
    if ts:
        ts.append(result.duration_s / 60.0)
        in_service.append(in_service[-1])
        total.append(total[-1])
    return ts, in_service, total


def timeline_chart(sim_result: "SimulationResult", ax: "Axes | None" = None,
                   title: str | None = None) -> "Axes":
    """Draw arrivals (req/s) and in-flight requests on `ax`, instances (InService, and
    InService + pending) on a twin right-hand axis, and a vertical line per alarm entering
    ALARM. Returns the left Axes; the figure is `ax.figure`. Time is in minutes."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(9, 4))
    tl = sim_result.timeline
    minutes = tl["t"] / 60.0
    ax.plot(minutes, tl["arrival_rate"], color="tab:gray", lw=1, label="arrivals (req/s)")
    ax.plot(minutes, tl["inflight"], color="tab:orange", lw=1.5, label="in flight (requests)")
    ax.set_xlabel("time (min)")
    ax.set_ylabel("requests")
    ax.grid(True, alpha=0.3)

    cap = ax.twinx()
    ts, in_service, total = _capacity_steps(sim_result)
    cap.step(ts, total, where="post", color="tab:green", ls="--", lw=1.2,
             label="InService + pending")
    cap.step(ts, in_service, where="post", color="tab:green", lw=2, label="InService")
    cap.set_ylabel("instances")
    cap.set_ylim(bottom=0, top=max(total + [1]) * 1.15 + 0.5)

    seen: set[str] = set()
    for event in sim_result.alarms:
        if event.state != "ALARM" or event.alarm not in _ALARM_STYLE:
            continue
        color, style = _ALARM_STYLE[event.alarm]
        label = f"{event.alarm} alarm" if event.alarm not in seen else "_nolegend_"
        seen.add(event.alarm)
        ax.axvline(event.t / 60.0, color=color, ls=style, lw=1, label=label)

    handles: list[Any] = ax.get_legend_handles_labels()[0] + cap.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize="small")
    s = sim_result.summary()
    ax.set_title(title or f"Fleet timeline: TTFT p90 {_fmt(s['ttft_s']['p90'])}, "
                          f"{sim_result.instance_hours:.2f} instance-h")
    return ax


def _fmt(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:.2f} s"
