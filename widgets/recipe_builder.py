"""Stack techniques into a recipe with checkboxes, and see at once whether the stack can run.

Every change rebuilds the recipe through the core (`recipe_from_dict`, then `check_stack`
for the chosen target), so the panel refuses exactly what `%optimize recipe validate` and
the command line refuse, with the same message; for the local target it also asks the core
whether this host's engine can run the techniques (AWQ int4 on an AVX2-only CPU cannot).
`.error` holds the reason while the recipe cannot run; the benchmark panel disables its Run
button with it. The Prepare button runs the core `prepare` verb for the recipe on a worker
thread (a `trained` draft trains for minutes), on the dataset file given beside it.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Any

import ipywidgets as W
from traitlets import Unicode

from jupyter_ext import defaults
from jupyter_ext.recipes import Recipe, check_stack, load_recipe, recipe_from_dict
from jupyter_ext.techniques.registry import get as get_technique, section_methods

from .messages import MessageArea, shown_in


def recipe_from_choices(name: str, model: str = defaults.DEFAULT_MODEL, *, base: str = "baseline",
                        eager: bool = True, speculative: str = "none", num_tokens: int = 4,
                        draft_model: str = "", quantize: str = "none", compile: bool = False,
                        target: str = "local") -> Recipe:
    """The recipe a set of choices stands for: `base`'s engine settings plus the techniques.
    Raises the core's RecipeError / StackError when the choices cannot be one recipe."""
    data = load_recipe(base).to_dict()
    data.update(name=name, model=model, description=f"built in the recipe builder from {base}",
                speculative=None, quantize=None, compile=None)
    data["engine"]["enforce_eager"] = eager
    if speculative == "draft_model":
        data["speculative"] = {"method": "draft_model", "model": draft_model, "num_tokens": num_tokens}
    elif speculative != "none":  # any other registered method: its own defaults plus the draft length
        fields = get_technique("speculative", speculative).schema.model_fields  # eagle has none (SageMaker picks)
        data["speculative"] = {"method": speculative, **({"num_tokens": num_tokens} if "num_tokens" in fields else {})}
    if quantize != "none":
        data["quantize"] = {"method": quantize}
    if compile:
        data["compile"] = {"enabled": True, "cache": True}
    recipe = recipe_from_dict(data, source="from the recipe builder")
    check_stack(recipe, target)
    return recipe


class RecipeBuilder(W.VBox):
    """Technique checkboxes and options in; a validated `.recipe` (or `.error`) out."""

    error = Unicode("", help="why the current choices are not a runnable recipe ('' when they are)")

    def __init__(self, model: str = defaults.DEFAULT_MODEL, **kwargs: Any) -> None:
        self.recipe: Recipe | None = None
        self.message = MessageArea()
        self.save_message = MessageArea()
        self.name = W.Text(value="my-recipe", description="name")
        self.model = W.Text(value=model, description="model", layout=W.Layout(width="560px"))
        self.eager = W.Checkbox(value=True, description="eager mode (no compilation; vLLM --enforce-eager)")
        self.speculative = W.Dropdown(options=["none", *section_methods("speculative")], value="none",
                                      description="speculative")
        self.num_tokens = W.BoundedIntText(value=4, min=1, max=16, description="draft tokens")
        self.draft_model = W.Text(value="self:8", description="draft model",
                                  placeholder="trained, catalog id, folder, or self:N (target cut to N layers)")
        self.quantize = W.Dropdown(options=["none", *section_methods("quantize")], value="none", description="quantize")
        self.compile = W.Checkbox(value=False, description="compile (torch.compile, cached)")
        self.target = W.ToggleButtons(options=["local", "sagemaker"], value="local", description="target")
        self.preview = W.HTML()
        self.save_path = W.Text(value="", placeholder="NAME.yaml", description="save as")
        self.save = W.Button(description="Save recipe", icon="save")
        self.save.add_class("jo-save")
        self.prepare_message = MessageArea()
        self.dataset = W.Text(value="", placeholder="chats.jsonl (optional)", description="dataset")
        self.prepare = W.Button(description="Prepare", icon="cogs",
                                tooltip="build the recipe's artifacts (train a 'trained' draft)")
        self.prepare.add_class("jo-prepare")
        self.prepare_task: threading.Thread | None = None
        self.choices = [self.name, self.model, self.eager, self.speculative, self.num_tokens,
                        self.draft_model, self.quantize, self.compile, self.target]
        hooks = ("name", "recipe-model", "eager", "speculative", "num-tokens", "draft-model", "quantize",
                 "compile", "target")
        for w, hook in zip(self.choices, hooks):  # stable CSS hooks (the browser test uses them)
            w.add_class(f"jo-{hook}")
        super().__init__([*self.choices, self.message, self.preview,
                          W.HBox([self.save_path, self.save]), self.save_message,
                          W.HBox([self.dataset, self.prepare]), self.prepare_message], **kwargs)
        self.add_class("jo-recipe-builder")
        self.validate = shown_in(self.message)(self._validate)
        for w in self.choices:
            w.observe(lambda _change: self.validate(), names="value")
        self.save.on_click(shown_in(self.save_message)(self._save))
        self.prepare.on_click(shown_in(self.prepare_message)(self._prepare))
        self.validate()

    def _validate(self) -> None:
        """Rebuild the recipe; on a mistake keep the message in `.error` as well as on show."""
        self.recipe, self.error = None, "checking"
        self.message.clear()
        self.draft_model.disabled = self.speculative.value != "draft_model"
        self.num_tokens.disabled = self.speculative.value == "none"
        try:
            recipe = recipe_from_choices(
                self.name.value, self.model.value, eager=self.eager.value, speculative=self.speculative.value,
                num_tokens=self.num_tokens.value, draft_model=self.draft_model.value,
                quantize=self.quantize.value, compile=self.compile.value, target=self.target.value)
            if self.target.value == "local":
                from jupyter_ext.techniques import check_host_support

                check_host_support(recipe)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.preview.value = ""
            raise
        self.recipe = recipe
        self.preview.value = f"<pre class='jo-recipe-yaml'>{html.escape(recipe.to_yaml())}</pre>"
        self.error = ""

    def _save(self, _button: Any = None) -> None:
        self.save_message.clear()
        if self.recipe is None:
            self.save_message.note(f"nothing saved: {self.error}")
            return
        path = Path(self.save_path.value or f"{self.recipe.name}.yaml")
        self.recipe.save(path)
        self.save_message.note(f"saved {path}")

    def _prepare(self, _button: Any = None) -> None:
        """Start `prepare` for the current recipe on a worker thread; its report (or error)
        lands in `prepare_message` and the button is enabled again."""
        from jupyter_ext.verbs import run

        if self.recipe is None:
            self.prepare_message.note(f"nothing prepared: {self.error}")
            return
        recipe, dataset = self.recipe, self.dataset.value.strip() or None
        self.prepare.disabled = True
        self.prepare_message.note(f"preparing {recipe.name} ...")

        @shown_in(self.prepare_message)
        def work() -> None:
            try:
                self.prepare_message.note(str(run.prepare(recipe, warm=False, dataset=dataset)))
            finally:
                self.prepare.disabled = False

        self.prepare_task = threading.Thread(target=work, name=f"prepare-{recipe.name}", daemon=True)
        self.prepare_task.start()
