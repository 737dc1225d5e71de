"""The contract between the operator and a stage pod: the command, its input flags and the environment.

The operator builds `adacot stage <stage_name(kind)> --spec SPEC [input flags]` with these environment
variables (adacot_operator.builders); the CLI's `stage` group (adacot.cli.stage) and the pipelines read
them. Defined once here, in the package both sides import, so the two cannot drift apart.
"""

from __future__ import annotations

OUTPUT_DIR_ENV = "ADACOT_OUTPUT_DIR"
"""Where the pod writes its artifact (the output volume's path) when the command has no --out."""
PROGRESS_PORT_ENV = "ADACOT_PROGRESS_PORT"
"""Port of the stage's read-only progress endpoint (GET /progress, adacot.progress.publish); unset: none."""
POD_IP_ENV = "ADACOT_POD_IP"
"""The pod's IP (downward API status.podIP): the address the progress endpoint binds."""
PROGRESS_PORT = 8470
"""The port the operator sets and reads (adacot_operator.progress); the chart's NetworkPolicy opens it."""
PROGRESS_PATH = "/progress"
TERMINATION_LOG_ENV = "ADACOT_TERMINATION_LOG"
"""Overrides where the termination message goes (default /dev/termination-log in a pod)."""
NPROC_ENV = "ADACOT_NPROC_PER_NODE"
"""Training processes per node of an SFTJob (default: resources.gpus)."""
SECRET_ENV_PREFIX = "ADACOT_SECRET_"
"""Prefix of the variables that carry Secret keys (SecretRef.env_var)."""

VALIDATION_FAILED_EXIT_CODE = 2
"""Exit code of a stage that rejects its spec or its inputs (click's usage-error code too): the operator
fails the Job at once, without retries, and reports reason ValidationFailed."""


class ValidationFailed(ValueError):
    """The stage's inputs contradict each other or its spec (e.g. P_eval graded differently from the
    bank), so retrying cannot help; the stage commands exit with VALIDATION_FAILED_EXIT_CODE."""


RUN_FLAG = "--run"
"""DifficultyBank: NAME=DIR of a GradingRun's artifact (repeatable)."""
BANK_FLAG = "--bank"
"""DistillationJob: the DifficultyBank's artifact."""
EVAL_GRADING_FLAG = "--eval-grading"
"""DistillationJob: the GradingRun artifact whose level shares are P_eval (distribution.fromGradingRun)."""
DATASET_FLAG = "--dataset"
"""SFTJob: the DistillationJob's artifact."""


def stage_name(kind: str) -> str:
    """`adacot stage <name>` and the stage label value of a kind: the kind lower-cased, as kubectl."""
    return kind.lower()
