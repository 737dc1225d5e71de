"""`adacot demo`: the whole method end to end on CPU with models trained in the session (see pipeline.py).

Modules: synthetic (the task), pretrain (student and teacher), spec (the distill.yaml), pipeline (serve,
run, collect), report (markdown + PNGs). `example_path` names the bundled verifier examples, which the
verifier tests and README examples use.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def example_path(name: str) -> Path:
    """A bundled example file (package data under adacot/data/examples), as a path."""
    return Path(str(resources.files("adacot") / "data" / "examples" / name))
