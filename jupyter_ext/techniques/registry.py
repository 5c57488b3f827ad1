"""The technique registry: every optimization technique is one object, found in one place.

A technique owns one recipe section (`speculative`, `quantize` or `compile`) and, for
sections with several methods, one value of its `method` key. It brings its strict section
schema, the option checks made when a recipe loads, the check of what this host can run,
its prepare step (artifacts built ahead of a start), the vLLM server arguments and
environment, and the SageMaker LMI container environment. recipes.py builds the Recipe
schema from `section_schemas`, and the engine, deploy and prepare loop over `active`.

Technique modules call `register` when imported; the package imports each of its modules
(see techniques/__init__.py), so adding a technique is adding one module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from ..recipes import Recipe

# The recipe sections techniques can own, in the order a recipe lists its techniques. A new
# section also needs its field on `Recipe`; a new method of these sections needs nothing else.
SECTIONS = ("speculative", "quantize", "compile", "adapters")


@dataclass
class Artifacts:
    """Paths a server for a recipe is started with (built by the techniques' prepare steps)."""

    model_path: str
    draft_path: str | None = None
    compile_cache_dir: str | None = None
    adapters: dict[str, str] = field(default_factory=dict)  # LoRA adapter name -> local folder

    def to_dict(self) -> dict:
        return {"model_path": self.model_path, "draft_path": self.draft_path,
                "compile_cache_dir": self.compile_cache_dir, "adapters": dict(self.adapters)}


@dataclass
class EngineArgs:
    """What one technique adds to the vLLM server: command-line flags and environment."""

    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LmiTarget:
    """Where a SageMaker endpoint finds what the techniques need: the model's S3 prefix (None:
    the container downloads from the Hub), the draft model (the mounted S3 channel or a Hub
    id; None when neither exists) and the S3 prefix of the LoRA adapters' tarballs."""

    model_data_s3: str | None = None
    draft: str | None = None
    adapters_s3: str | None = None  # the S3 prefix holding <adapter name>.tar.gz for each LoRA adapter


class Technique:
    """One technique. Subclasses set `section`, `method` and `schema` and override the steps
    that apply to them; every step defaults to "nothing to do"."""

    section: ClassVar[str]
    method: ClassVar[str | None] = None  # the `method` key's value; None for one-schema sections
    schema: ClassVar[type[BaseModel]]
    runs_compiled: ClassVar[bool] = False  # the server runs compiled, so engine.enforce_eager is not passed

    @property
    def name(self) -> str:
        """As `Recipe.techniques` lists it: `speculative:ngram`, `quantize:awq`, `compile`."""
        return f"{self.section}:{self.method}" if self.method else self.section

    def options(self, recipe: Recipe) -> Any:
        """This technique's section of the recipe (an instance of `schema`)."""
        return getattr(recipe, self.section)

    def is_active(self, recipe: Recipe) -> bool:
        opts = getattr(recipe, self.section, None)
        return opts is not None and getattr(opts, "method", None) == self.method

    def validate(self, recipe: Recipe) -> None:
        """Checks that need no artifact and no engine, run when a recipe loads: RecipeError
        naming the field."""

    def check_host(self, recipe: Recipe, platform: str) -> None:
        """TechniqueUnavailableError when this host's engine cannot run the technique."""

    def prepare(self, recipe: Recipe, artifacts: Artifacts, source: Path, cache_root: Path) -> Artifacts:
        """Build or find this technique's artifacts; `source` is the model folder the recipe
        names, before any technique replaced it. Returns the (updated) artifacts."""
        return artifacts

    def artifact_key(self, recipe: Recipe) -> Any:
        """What of this section changes every artifact built for the recipe (the weights'
        format), as JSON-able data; None when it changes none."""
        return None

    def engine_args(self, recipe: Recipe, artifacts: Artifacts, platform: str) -> EngineArgs:
        """vLLM server flags and environment on `platform` ('cpu' or 'cuda')."""
        return EngineArgs()

    def check_deploy(self, recipe: Recipe, target: LmiTarget) -> None:
        """DeployError for what SageMaker would refuse only after minutes of provisioning."""

    def lmi_env(self, recipe: Recipe, target: LmiTarget) -> dict[str, str]:
        """The LMI container's OPTION_* variables for this technique (string values)."""
        return {}

    def deploy_warnings(self, recipe: Recipe) -> list[str]:
        """What will not fail a SageMaker plan but may fail or mislead later."""
        return []

    def __repr__(self) -> str:
        return f"<technique {self.name}: {self.schema.__name__}>"


class SpeculativeMethod(Technique):
    """A `speculative` method: its one `speculative_config` builds vLLM's --speculative-config
    for both the local server (draft as a local folder) and LMI, where the deploy passes
    `lmi_speculative_config` (draft on S3 or the Hub) as OPTION_SPECULATIVE_CONFIG."""

    section: ClassVar[str] = "speculative"

    def speculative_config(self, options: Any, draft: str | None) -> dict[str, Any]:
        raise NotImplementedError

    def local_draft(self, recipe: Recipe, artifacts: Artifacts) -> str | None:
        """Where the local server finds the draft (None for methods without one)."""
        return artifacts.draft_path

    def lmi_speculative_config(self, recipe: Recipe, target: LmiTarget) -> dict[str, Any]:
        return self.speculative_config(self.options(recipe), target.draft)

    def draft_hf_id(self, recipe: Recipe) -> str | None:
        """The Hub id an endpoint can download the draft from; None without one."""
        return None

    def engine_args(self, recipe: Recipe, artifacts: Artifacts, platform: str) -> EngineArgs:
        config = self.speculative_config(self.options(recipe), self.local_draft(recipe, artifacts))
        return EngineArgs(argv=["--speculative-config", json.dumps(config)])

    def deploy_warnings(self, recipe: Recipe) -> list[str]:
        return ["check that speculation is active: benchmark the endpoint and look for an acceptance rate > 0"]


_REGISTRY: dict[tuple[str, str | None], Technique] = {}


def _same_definition(a: Technique, b: Technique) -> bool:
    return (type(a).__module__, type(a).__qualname__) == (type(b).__module__, type(b).__qualname__)


def register(technique: Technique) -> Technique:
    """Add a technique; a reloaded module's technique replaces its earlier self, in its place.
    ValueError for one that does not fit: an unknown section, a schema whose `method` field
    disagrees with the technique, or a second technique for a section, method pair."""
    if technique.section not in SECTIONS:
        raise ValueError(f"technique {technique.name!r}: section {technique.section!r} is not one of "
                         f"{', '.join(SECTIONS)}; a new section needs its field on Recipe")
    fields = technique.schema.model_fields
    if (technique.method is None) == ("method" in fields):
        raise ValueError(f"technique {technique.name!r}: a schema has a `method` field exactly when "
                         f"its technique has a method")
    key = (technique.section, technique.method)
    taken = [t for t in _REGISTRY.values() if t.section == technique.section and not _same_definition(t, technique)
             and (t.method == technique.method or None in (t.method, technique.method))]
    if taken:
        raise ValueError(f"technique {technique.name!r}: section {technique.section!r} already has "
                         f"{taken[0].name!r}; techniques sharing a section each need their own method")
    _REGISTRY[key] = technique
    return technique


def all_techniques() -> list[Technique]:
    """Every registered technique: by section, then in the order they were registered."""
    return sorted(_REGISTRY.values(), key=lambda t: SECTIONS.index(t.section))


def section_techniques(section: str) -> list[Technique]:
    return [t for t in all_techniques() if t.section == section]


def section_schemas(section: str) -> list[type[BaseModel]]:
    """The schemas one recipe section may take (one per method)."""
    return [t.schema for t in section_techniques(section)]


def section_methods(section: str) -> list[str]:
    """The `method` values a section accepts, for error messages."""
    return [t.method for t in section_techniques(section) if t.method is not None]


def get(section: str, method: str | None = None) -> Technique:
    try:
        return _REGISTRY[(section, method)]
    except KeyError:
        raise KeyError(f"no technique {section}:{method} is registered") from None


def active(recipe: Recipe) -> list[Technique]:
    """The techniques `recipe` stacks, in section order."""
    return [t for t in all_techniques() if t.is_active(recipe)]


def technique_names(recipe: Recipe) -> list[str]:
    return [t.name for t in active(recipe)]


def speculative_method(recipe: Recipe) -> SpeculativeMethod | None:
    """The recipe's speculative technique, or None without speculation."""
    for t in active(recipe):
        if isinstance(t, SpeculativeMethod):
            return t
    return None
