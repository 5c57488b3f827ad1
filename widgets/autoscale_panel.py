"""Choose an autoscaling policy, watch it in the fleet simulator, then attach it.

Every change of a setting rebuilds the core's `AutoscalingConfig`, so the panel refuses
exactly what `%optimize autoscale attach` refuses (min > max, target <= 0, ...), with the
same AutoscaleError message; while the settings are invalid, Simulate and Attach are
disabled and say why. Simulate runs the same policies `attach` would create against a
traffic ramp (see autoscale.simulate) and shows the summary and the timeline before any
instance is paid for. Attach sends the requests, or with "dry run" only shows them.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as W
from traitlets import Unicode

from jupyter_ext import catalog
from jupyter_ext.autoscale import scenario
from jupyter_ext.errors import AutoscaleError

from .deploy_panel import gpu_instance_names
from .messages import MessageArea, shown_in


class AutoscalePanel(W.VBox):
    """Policy settings in; `.config` (or `.error`), simulation report and AWS state out.
    `.result` holds the last object the core returned."""

    error = Unicode("", help="why the settings are not a valid policy ('' when they are)")

    def __init__(self, endpoint: str = "", **kwargs: Any) -> None:
        self.config: Any = None
        self.result: Any = None
        self.report: Any = None  # the last SimulationReport
        self.message = MessageArea()
        st = {"style": {"description_width": "150px"}}
        self.endpoint = W.Text(value=endpoint, description="endpoint", placeholder="SageMaker endpoint name", **st)
        self.variant = W.Text(value="AllTraffic", description="variant", **st)
        self.component = W.Text(value="", description="inference component", placeholder="optional", **st)
        self.region = W.Text(value="", description="region", placeholder="default: AWS_REGION", **st)
        self._policy_fields(st)
        self._simulation_fields(st)
        self.attach = W.Button(description="Attach", button_style="primary", icon="link")
        self.attach_dry_run = W.Checkbox(value=True, description="dry run (show the requests only)")
        self.show = W.Button(description="Show", icon="eye")
        self.detach = W.Button(description="Detach", icon="unlink")
        self.reason = W.HTML()
        self.output = W.HTML()
        for w, hook in ((self.simulate, "simulate"), (self.attach, "attach"), (self.reason, "attach-reason"),
                        (self.simulation, "simulation"), (self.timeline, "timeline"),
                        (self.output, "autoscale-result")):
            w.add_class(f"jo-{hook}")
        where = W.VBox([self.endpoint, self.variant, self.component, self.region])
        sim = W.VBox([self.ramp, self.duration, self.instance, self.ttft_slo, self.bench_result])
        super().__init__([W.HBox([W.VBox(self.settings), sim]), self.message,
                          W.HBox([self.simulate, self.reason]), self.simulation, self.timeline,
                          W.HTML("<b>Endpoint</b>"), where,
                          W.HBox([self.attach, self.attach_dry_run, self.show, self.detach]), self.output],
                         **kwargs)
        self.add_class("jo-autoscale-panel")
        guard = shown_in(self.message)
        self.validate = guard(self._validate)
        for w in self.settings:
            w.observe(lambda _c: self.validate(), names="value")
        self.simulate.on_click(guard(self._simulate))
        self.attach.on_click(guard(self._attach))
        self.show.on_click(guard(lambda _b: self._on_endpoint("show")))
        self.detach.on_click(guard(lambda _b: self._on_endpoint("detach")))
        self.validate()

    def _policy_fields(self, st: dict[str, Any]) -> None:
        """The policy's settings, starting from the core's defaults (AutoscalingConfig)."""
        from jupyter_ext.autoscale.policy import AutoscalingConfig

        d = AutoscalingConfig()
        self.min_capacity = W.IntText(value=d.min_capacity, description="min instances", **st)
        self.max_capacity = W.IntText(value=d.max_capacity, description="max instances", **st)
        self.target_value = W.FloatText(value=d.target_value, description="target value",
                                        tooltip="concurrent requests per instance (or per copy)", **st)
        self.metric = W.Dropdown(options=[("concurrency (10 s, high resolution)", "concurrency"),
                                          ("invocations per instance (60 s)", "invocations")],
                                 value=d.metric, description="metric", **st)
        self.scale_in_cooldown = W.IntText(value=d.scale_in_cooldown_s, description="scale-in cooldown (s)", **st)
        self.scale_out_cooldown = W.IntText(value=d.scale_out_cooldown_s, description="scale-out cooldown (s)", **st)
        self.settings = [self.min_capacity, self.max_capacity, self.target_value, self.metric,
                         self.scale_in_cooldown, self.scale_out_cooldown]

    def _simulation_fields(self, st: dict[str, Any]) -> None:
        """The traffic and service curve the policy is tried against (the CLI's defaults)."""
        self.ramp = W.Text(value=scenario.DEFAULT_RAMP, description="ramp (t_s:req/s)", **st)
        self.duration = W.BoundedFloatText(value=scenario.DEFAULT_DURATION_S, min=60.0, max=86400.0, description="duration (s)", **st)
        self.instance = W.Dropdown(options=gpu_instance_names(), value="ml.g5.xlarge", description="priced as", **st)
        self.ttft_slo = W.BoundedFloatText(value=2.0, min=0.01, max=600.0, description="TTFT SLO (s)", **st)
        self.bench_result = W.Text(value="", description="bench result", **st,
                                   placeholder="JSON path (empty: estimate 30 tok/s, saturation 16)")
        self.simulate = W.Button(description="Simulate", icon="line-chart")
        self.simulation = W.HTML()  # the summary table
        self.timeline = W.Image(format="png", layout=W.Layout(max_width="100%", display="none"))

    # -- state -----------------------------------------------------------------------------
    def _validate(self) -> None:
        """Rebuild the config; on a mistake keep the message in `.error`, disable the buttons."""
        from jupyter_ext.autoscale.policy import AutoscalingConfig

        self.config, self.error = None, "checking"
        self.message.clear()
        try:
            self.config = AutoscalingConfig(
                min_capacity=self.min_capacity.value, max_capacity=self.max_capacity.value,
                target_value=self.target_value.value, metric=self.metric.value,
                scale_in_cooldown_s=self.scale_in_cooldown.value, scale_out_cooldown_s=self.scale_out_cooldown.value)
            self.error = ""
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._sync()

    def _sync(self) -> None:
        why = f"the policy is invalid: {self.error}" if self.error else ""
        self.attach.disabled = self.simulate.disabled = bool(why)
        self.attach.tooltip = why or "attach this policy to the endpoint"
        self.simulate.tooltip = why or "simulate the policy under the ramp"
        self.reason.value = f"<span style='color:#a40000'>{html.escape(why)}</span>" if why else ""

    def _valid_config(self) -> Any:
        """The config, or the reason there is none (a click on a disabled button from code)."""
        if self.config is None:
            raise AutoscaleError(f"the policy is invalid: {self.error}")
        return self.config

    def _where(self) -> dict[str, Any]:
        if not self.endpoint.value.strip():
            raise AutoscaleError("fill in the endpoint: the name of a deployed SageMaker endpoint")
        where = {"variant_name": self.variant.value.strip() or "AllTraffic",
                 "inference_component": self.component.value.strip() or None}
        return {"endpoint_name": self.endpoint.value.strip(), **where}

    def _show(self, obj: Any) -> None:
        self.result = obj
        self.output.value = obj._repr_html_()

    # -- actions ---------------------------------------------------------------------------
    def _simulate(self, _button: Any = None) -> None:
        self.message.clear()
        self.simulation.value = "<i>simulating ...</i>"
        self.timeline.layout.display = "none"
        try:
            rate = catalog.get_instance(self.instance.value).usd_per_hour
            report = scenario.run(scenario.Scenario(
                config=self._valid_config(), result=self.bench_result.value.strip() or None, ramp=self.ramp.value,
                duration_s=self.duration.value, usd_per_hour=rate, ttft_slo_s=self.ttft_slo.value))
        except Exception:
            self.simulation.value = ""
            raise
        self.report = report
        self.simulation.value = report.result._repr_html_()
        self.timeline.value = report.png()  # the PNG bytes themselves, as the notebook shows them
        self.timeline.layout.display = None

    def _attach(self, _button: Any = None) -> None:
        from jupyter_ext.autoscale import policy

        self.message.clear()
        config = self._valid_config()
        where = self._where()
        endpoint = where.pop("endpoint_name")
        if self.attach_dry_run.value:
            self._show(policy.dry_run(endpoint, config, **where))
            return
        self._show(policy.attach(endpoint, config, region=self.region.value.strip() or None, **where))

    def _on_endpoint(self, action: str) -> None:
        from jupyter_ext.autoscale import policy

        self.message.clear()
        fn = policy.show if action == "show" else policy.detach
        self._show(fn(**self._where(), region=self.region.value.strip() or None))
