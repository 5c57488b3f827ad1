"""jupyter-optimize: make LLM inference cheaper and faster from Jupyter.

The core API lives in the subpackages (catalog, recipes, bench, pricing, charts, engine,
deploy, autoscale). `%load_ext jupyter_ext` registers the `%optimize` magics; importing this
package stays cheap (no IPython, torch, vLLM or matplotlib) so that loading the extension
takes well under a second: every heavy import happens inside the verb that needs it.
"""

from __future__ import annotations

__version__ = "0.1.0"


def load_ipython_extension(ipython) -> None:
    """Called by `%load_ext jupyter_ext`: register `%optimize` / `%%optimize`."""
    from .faces.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    """Called by `%unload_ext jupyter_ext`: stop servers started from the notebook."""
    from .faces.magics import unload_ipython_extension as unload

    unload(ipython)
