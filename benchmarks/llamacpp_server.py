"""Start llama-cpp-python's OpenAI server with llama.cpp's extra buffer types turned off.

On the AMX-capable Xeon VMs here, llama.cpp's AMX path (an "extra buffer type" that
repacks Q4_1 weights for AMX tiles) segfaults in the first llama_decode; with
`use_extra_bufts = false` the same build runs its AVX512 kernels. llama-cpp-python exposes
no switch for it, so this wrapper sets it in the default model parameters and then runs
the server module unchanged.   Usage: python benchmarks/llamacpp_server.py --model X.gguf ...
"""

import runpy

import llama_cpp.llama_cpp as lib

_default = lib.llama_model_default_params


def _no_extra_bufts():
    params = _default()
    params.use_extra_bufts = False
    return params


lib.llama_model_default_params = _no_extra_bufts
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
