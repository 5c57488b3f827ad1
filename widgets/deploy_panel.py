"""Deploy a recipe from buttons: locally (a vLLM endpoint) or to SageMaker, with a dry run
that shows the exact requests first, and the list of endpoints with an Undeploy button.

Deploying takes minutes (a vLLM start here, instances on SageMaker), so the core call runs
on a worker thread and the kernel stays free; the thread only sets widget values when it
ends (ipywidgets sends those from any thread). Callbacks read `.value` and call the core
(`deploy.local`, `deploy.sagemaker`); a failure is shown in the panel's message area.
"""

from __future__ import annotations

import functools
import html
import threading
from typing import Any, Callable

import ipywidgets as W
from traitlets import Unicode

from jupyter_ext import catalog
from jupyter_ext.display import html_table
from jupyter_ext.errors import DeployError

from .messages import MessageArea, shown_in

FROM_BUILDER = "(the Recipe tab's recipe)"


def _recipe_names() -> list[str]:
    from jupyter_ext.recipes import list_recipes

    return [r.name for r in list_recipes()]


def gpu_instance_names() -> list[str]:
    """The catalog's GPU types: what the LMI vLLM container runs on."""
    return [i.name for i in catalog.list_instances() if getattr(i, "kind", "") == "gpu"]


class DeployPanel(W.VBox):
    """Recipe + target in; dry run, deploy, endpoint list and undeploy. `.result` holds the
    last object the core returned, `.endpoint_name` the last SageMaker endpoint deployed."""

    endpoint_name = Unicode("", help="the SageMaker endpoint deployed last ('' before one is)")

    def __init__(self, builder: Any = None, *, recipe: str = "ngram", **kwargs: Any) -> None:
        self.builder = builder
        self.result: Any = None
        self.sagemaker: dict[str, Any] = {}  # endpoint name -> SageMakerDeployment made here
        self.task: threading.Thread | None = None
        self.busy = False  # a deploy or undeploy is running on self.task
        self.message = MessageArea()
        wide = {"style": {"description_width": "110px"}, "layout": W.Layout(width="520px")}
        options = ([FROM_BUILDER] if builder is not None else []) + _recipe_names()
        self.recipe = W.Combobox(value=FROM_BUILDER if builder is not None else recipe, options=options,
                                 description="recipe", placeholder="recipe name or YAML path", **wide)
        self.target = W.ToggleButtons(options=["local", "sagemaker"], value="local", description="target")
        self.name = W.Text(value="", description="endpoint name", placeholder="default: from the recipe", **wide)
        self.instance_type = W.Dropdown(options=gpu_instance_names(), value="ml.g5.xlarge", description="instance", **wide)
        self.instance_count = W.BoundedIntText(value=1, min=1, max=100, description="instances", **wide)
        self.role_arn = W.Text(value="", description="role ARN", placeholder="arn:aws:iam::<account>:role/<name>",
                               **wide)
        self.region = W.Text(value="", description="region", placeholder="default: AWS_REGION", **wide)
        self.adapters_s3 = W.Text(value="", description="adapters S3", placeholder="s3://bucket/prefix (<adapter>.tar.gz "
                                  "each; recipes with adapters:)", **wide)
        self.sagemaker_box = W.VBox([self.instance_type, self.instance_count, self.role_arn, self.region,
                                     self.adapters_s3])
        self.dry_run = W.Button(description="Dry run", icon="eye")
        self.deploy = W.Button(description="Deploy", button_style="primary", icon="cloud-upload")
        self.reason = W.HTML()
        self.status = W.HTML()
        self.output = W.HTML()
        self.endpoints = W.HTML()
        self.pick = W.Dropdown(options=[], description="endpoint")
        self.undeploy = W.Button(description="Undeploy", button_style="danger", icon="trash")
        self.refresh = W.Button(description="Refresh", icon="refresh")
        for w, hook in ((self.deploy, "deploy"), (self.dry_run, "dry-run"), (self.undeploy, "undeploy"),
                        (self.output, "deploy-result"), (self.endpoints, "endpoints")):
            w.add_class(f"jo-{hook}")
        super().__init__([self.recipe, self.target, self.name, self.sagemaker_box,
                          W.HBox([self.dry_run, self.deploy, self.reason]), self.status, self.message,
                          self.output, W.HTML("<b>Endpoints</b>"), self.endpoints,
                          W.HBox([self.pick, self.undeploy, self.refresh])], **kwargs)
        self.add_class("jo-deploy-panel")
        guard = shown_in(self.message)
        self.dry_run.on_click(guard(self._dry_run))
        self.deploy.on_click(guard(self._deploy))
        self.undeploy.on_click(guard(self._undeploy))
        self.refresh.on_click(guard(lambda _b: self.list_endpoints()))
        for w in (self.target, self.recipe):
            w.observe(lambda _c: self._sync(), names="value")
        if builder is not None:
            builder.observe(lambda _c: self._sync(), names="error")
        self._sync()
        guard(self.list_endpoints)()

    # -- state -----------------------------------------------------------------------------
    def _why_not(self) -> str:
        """Why Deploy cannot be clicked now ('' when it can)."""
        if self.busy:
            return "busy: wait for the deploy or undeploy in progress"
        if self.recipe.value == FROM_BUILDER and self.builder is not None and self.builder.error:
            return f"the recipe cannot run: {self.builder.error}"
        return ""

    def _sync(self) -> None:
        sagemaker = self.target.value == "sagemaker"
        self.sagemaker_box.layout.display = None if sagemaker else "none"
        why = self._why_not()
        self.deploy.disabled = self.undeploy.disabled = bool(why)
        self.dry_run.disabled = bool(why) or not sagemaker
        self.dry_run.tooltip = ("show the exact AWS requests; nothing is sent" if sagemaker
                                else "a local deploy sends no AWS requests")
        self.deploy.tooltip = why or f"deploy to {self.target.value}"
        self.reason.value = f"<span style='color:#a40000'>{html.escape(why)}</span>" if why else ""

    def _chosen_recipe(self) -> Any:
        from jupyter_ext.recipes import load_recipe

        if self.recipe.value == FROM_BUILDER:
            if self.builder is None or self.builder.recipe is None:
                raise DeployError(f"the Recipe tab has no runnable recipe: {getattr(self.builder, 'error', '')}")
            return self.builder.recipe
        if not self.recipe.value.strip():
            raise DeployError("choose a recipe: a shipped name (e.g. ngram) or a YAML path")
        return load_recipe(self.recipe.value.strip())

    def _plan(self, dry_run: bool) -> Any:
        from jupyter_ext.deploy import sagemaker

        role = self.role_arn.value.strip()
        if not role and not dry_run:
            raise DeployError("a SageMaker deploy needs the endpoint's execution role: fill in role ARN "
                              "(Dry run works without one)")
        return sagemaker.plan_deployment(self._chosen_recipe(), self.name.value.strip() or None,
                                         role_arn=role or sagemaker.DRY_RUN_ROLE, region=self.region.value.strip() or None,
                                         instance_type=self.instance_type.value,
                                         instance_count=self.instance_count.value,
                                         adapters_s3=self.adapters_s3.value.strip() or None)

    def _show(self, obj: Any) -> None:
        self.result = obj
        self.output.value = obj._repr_html_()

    # -- actions ---------------------------------------------------------------------------
    def _dry_run(self, _button: Any = None) -> None:
        from jupyter_ext.deploy import sagemaker

        self.message.clear()
        plan = self._plan(dry_run=True)
        self._show(sagemaker.dry_run(plan))

    def _deploy(self, _button: Any = None) -> None:
        from jupyter_ext.deploy import local, sagemaker

        self.message.clear()
        if self.target.value == "local":
            recipe, name = self._chosen_recipe(), self.name.value.strip() or None
            self._in_background(f"starting vLLM for {recipe.name} (a minute or more on a CPU)",
                                lambda: local.deploy(recipe, name=name), self._deployed)
            return
        plan = self._plan(dry_run=False)
        self._in_background(f"deploying {plan.endpoint_name} to SageMaker (minutes)",
                            lambda: sagemaker.deploy(plan, progress=False), self._deployed)

    def _deployed(self, result: Any) -> None:
        self._show(result)
        if hasattr(result, "endpoint_name"):
            self.sagemaker[result.endpoint_name] = result
            self.endpoint_name = result.endpoint_name
        self.list_endpoints()

    def _undeploy(self, _button: Any = None) -> None:
        from jupyter_ext.deploy import local, sagemaker

        self.message.clear()
        if self.pick.value is None:
            raise DeployError("no endpoint is selected; deploy one, or click Refresh")
        kind, name = self.pick.value
        if kind == "local":
            work: Callable[[], Any] = functools.partial(local.undeploy, name)
        else:
            work = functools.partial(sagemaker.undeploy, name, region=self.sagemaker[name].region)

        def done(result: Any) -> None:
            self.sagemaker.pop(name, None)
            self._show(result)
            self.list_endpoints()

        self._in_background(f"undeploying {name}", work, done)

    def list_endpoints(self) -> None:
        """Local endpoints (found through their state files) and SageMaker ones deployed here."""
        from jupyter_ext.deploy import local

        found = [("local", e.name, e.status, e.base_url) for e in local.list_endpoints()]
        found += [("sagemaker", d.endpoint_name, d.status, d.region) for d in self.sagemaker.values()]
        self.endpoints.value = (html_table(["target", "name", "status", "where"], found) if found
                                else "<p>(no endpoints)</p>")
        current = self.pick.value
        self.pick.options = [(f"{kind}: {name}", (kind, name)) for kind, name, _, _ in found]
        values = [v for _, v in self.pick.options]
        self.pick.value = current if current in values else (values[0] if values else None)

    def _in_background(self, what: str, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Run `work` on a worker thread; then `done(result)`, or show its error here."""
        if self.busy:  # the buttons are disabled meanwhile; code can still click them
            raise DeployError("busy: wait for the deploy or undeploy in progress (.wait())")
        self.status.value = f"<i>{html.escape(what)} ...</i>"

        def run() -> None:
            try:
                shown_in(self.message)(lambda: done(work()))()
            finally:
                self.busy = False
                self.status.value = ""
                self._sync()

        self.busy = True
        self._sync()
        self.task = threading.Thread(target=run, daemon=True, name="jupyter-optimize-deploy")
        self.task.start()

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the deploy/undeploy in progress (for code that drives the panel)."""
        if self.task is not None:
            self.task.join(timeout)
            if self.task.is_alive():
                raise DeployError(f"still busy after {timeout} s")
        return self.result
