"""The strict pydantic base of every recipe section: unknown keys and bad assignments fail.

It sits in the base layer so that the recipe schema (recipes.py) and the techniques, which
each own one recipe section, share it without the techniques importing recipes.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A schema that forbids unknown keys (a misspelt option is an error, not a no-op) and
    validates assignments as well as construction."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
