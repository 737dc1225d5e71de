"""Defaults that depend on other resources of the same pipeline, shared by `adacot run` and the
operator so that both fill a spec the same way."""

from __future__ import annotations

from collections.abc import Mapping

from adacot.api import AnyResource
from adacot.api.common import ModelSpec
from adacot.api.difficulty_bank import DifficultyBank
from adacot.api.distillation_job import DistillationJob
from adacot.api.grading_run import GradingRun
from adacot.api.sft_job import SFTJob

ResourcesByKey = Mapping[tuple[str, str], AnyResource]
"""The pipeline's resources by (kind, name)."""


def with_default_model(resource: AnyResource, by_key: ResourcesByKey) -> AnyResource:
    """An SFTJob without a model trains the model of the bank behind its DistillationJob (the bank's
    own model, else its first GradingRun's): the student the CoT was chosen for."""
    if not isinstance(resource, SFTJob) or resource.spec.model is not None:
        return resource
    ref = resource.spec.dataset.distillation_job_ref
    job = by_key.get(("DistillationJob", ref.name)) if ref else None
    bank = (
        by_key.get(("DifficultyBank", job.spec.bank_ref.name)) if isinstance(job, DistillationJob) else None
    )
    model = _bank_model(bank, by_key) if isinstance(bank, DifficultyBank) else None
    if model is None:
        return resource
    return resource.model_copy(update={"spec": resource.spec.model_copy(update={"model": model})})


def _bank_model(bank: DifficultyBank, by_key: ResourcesByKey) -> ModelSpec | None:
    if bank.spec.model is not None:
        return bank.spec.model
    name = bank.metadata.name
    for run in (r for r in by_key.values() if isinstance(r, GradingRun)):
        if run.key in bank.references() or (run.spec.bank_ref is not None and run.spec.bank_ref.name == name):
            return run.spec.model
    return None
