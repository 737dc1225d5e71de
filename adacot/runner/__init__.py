"""The local runner behind `adacot run FILE.yaml`: the YAML `kubectl apply` takes, run on one machine.

`planning` validates the whole file and orders the stages; `execution` runs each through its kind's
pipeline (the function a stage pod calls); `console` shows it; `table` prints the outcome.
"""

from adacot.runner.execution import (
    DONE,
    FAILED,
    SKIPPED_COMPLETE,
    SKIPPED_DEPENDENCY,
    ProgressFactory,
    StageResult,
    execute,
    run_stage,
    stage_complete,
)
from adacot.runner.planning import Key, PlanError, Stage, plan, topological_order

__all__ = [
    "DONE",
    "FAILED",
    "SKIPPED_COMPLETE",
    "SKIPPED_DEPENDENCY",
    "Key",
    "PlanError",
    "ProgressFactory",
    "Stage",
    "StageResult",
    "execute",
    "plan",
    "run_stage",
    "stage_complete",
    "topological_order",
]
