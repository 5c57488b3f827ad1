"""Widget panels over the jupyter-optimize core: pick a model, build a recipe, benchmark it,
deploy and autoscale it. Callbacks read widget values and call the core; every error is
shown in the panel. `OptimizePanel` tabs them together (`%optimize panel`)."""

from .autoscale_panel import AutoscalePanel
from .bench_panel import BenchmarkPanel
from .deploy_panel import DeployPanel
from .messages import MessageArea
from .model_picker import ModelPicker
from .panel import OptimizePanel
from .recipe_builder import RecipeBuilder, recipe_from_choices

__all__ = ["AutoscalePanel", "BenchmarkPanel", "DeployPanel", "MessageArea", "ModelPicker", "OptimizePanel", "RecipeBuilder",
           "recipe_from_choices"]
