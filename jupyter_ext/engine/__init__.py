"""The local engine: the vLLM server's command line and its lifecycle (model files live in `store`)."""

from ..base.host import engine_platform, vllm_version
from .args import ServerCommand, build_server_command
from ..store.model_files import cache_root, find_packaged_gguf, model_folder
from .server import LocalServer, free_port, server_for_recipe

__all__ = ["LocalServer", "ServerCommand", "build_server_command", "cache_root", "engine_platform",
           "find_packaged_gguf", "free_port", "model_folder", "server_for_recipe", "vllm_version"]
