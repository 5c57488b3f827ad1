"""The one botocore configuration every AWS client of the toolkit is made with.

It lives at the bottom of the layers because clients are made in several of them: the
Price List API's in `pricing`, SageMaker's and the autoscaling services' in `deploy.aws`.
"""

from __future__ import annotations

from botocore.config import Config

DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_RETRY_MODE = "adaptive"
DEFAULT_POOL = 64  # connections per client: botocore's default of 10 throttles a benchmark


def retry_config(max_attempts: int = DEFAULT_MAX_ATTEMPTS, mode: str = DEFAULT_RETRY_MODE,
                 max_pool_connections: int = DEFAULT_POOL) -> Config:
    """botocore retries ThrottlingException (and 5xx) with exponential backoff in these modes;
    "adaptive" also slows the client down when AWS keeps throttling (polling loops do).
    `max_attempts` counts the first request too (botocore's `total_max_attempts`; its
    `max_attempts` key would count retries only)."""
    if mode not in ("standard", "adaptive"):
        raise ValueError(f"retry mode must be 'standard' or 'adaptive', got {mode!r}")
    return Config(retries={"mode": mode, "total_max_attempts": max_attempts},
                  max_pool_connections=max_pool_connections, user_agent_extra="jupyter-optimize")
