"""The resource spec models: defaults, validation tables, CEL twins, check_update, references."""

from __future__ import annotations

import copy
from typing import Any, get_args, get_origin

import celpy
import pytest
from celpy import celtypes
from celpy.adapter import json_to_cel
from pydantic import BaseModel, ValidationError

from adacot.api import (
    RESOURCE_KINDS,
    DifficultyBank,
    DistillationJob,
    GradingRun,
    SFTJob,
    check_update,
    dependency_graph,
    references,
)
from adacot.api.common import ModelSpec, TaskType
from adacot.api.difficulty_bank import DifficultyBankSpec
from adacot.api.distillation_job import DistributionSpec, PriorSpec, TeacherSpec
from adacot.api.generation import VerificationSpec
from adacot.api.grading_run import GradingRunSpec, LevelMapping, PrmSpec
from adacot.api.rules import IMMUTABLE
from adacot.api.sft_job import DeepSpeedSpec, SftDataset, SFTJobSpec
from adacot.api.workload import OutputSpec
from adacot.verify import code
from adacot.verify.factory import make_verifier

MODEL = {"path": "/models/student"}
ENDPOINT = {"url": "http://teacher:8000/v1", "model": "t"}
GRADING = {"questions": {"path": "q.jsonl", "task": "code"}, "model": MODEL}
DISTIL = {"bankRef": {"name": "bank"}, "distribution": {"prior": {}}, "teacher": {"endpoint": ENDPOINT}}
SFT = {"dataset": {"distillationJobRef": {"name": "dj"}}}


def meta(name: str = "x") -> dict[str, Any]:
    return {"name": name}


def test_gpus_default_to_one_only_when_resources_are_absent() -> None:
    """Resources given in part (cpu, memory) ask for no accelerator; absent, a GPU stage gets one."""
    partial = GradingRunSpec.model_validate({**GRADING, "resources": {"cpu": "4", "memory": "8Gi"}})
    assert partial.resources.gpus == 0
    assert GradingRunSpec.model_validate(GRADING).resources.gpus == 1
    assert SFTJob.model_json_schema()["$defs"]["Resources"]["properties"]["gpus"]["default"] == 0


def test_two_secret_keys_that_would_share_a_variable_are_refused() -> None:
    """a-b/c and a/b-c both become ADACOT_SECRET_A_B_C: the pod would get one key for both."""
    prm = {"method": "prm", "prm": {"model": {**MODEL, "token": {"name": "a", "key": "b-c"}}}}
    clash = {**GRADING, "grader": prm, "model": {**MODEL, "token": {"name": "a-b", "key": "c"}}}
    with pytest.raises(ValidationError, match="a-b/c and a/b-c would share the environment variable"):
        GradingRun.model_validate({"metadata": meta(), "spec": clash})
    same = {**clash, "model": {**MODEL, "token": {"name": "a", "key": "b-c"}}}  # one key used twice
    assert GradingRun.model_validate({"metadata": meta(), "spec": same})


def test_the_crd_leaves_the_output_size_to_the_operator() -> None:
    """A schema default would be filled in by the API server and override the chart's setting."""
    schema = GradingRun.model_json_schema()["$defs"]["VolumeClaimSpec"]["properties"]["size"]
    assert "default" not in schema or schema["default"] is None


def test_code_memory_is_a_quantity_the_sandbox_gets_in_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert VerificationSpec().code_memory_bytes == 1 << 30
    assert VerificationSpec.model_validate({"codeMemory": "512Mi"}).code_memory_bytes == 512 << 20
    assert VerificationSpec.model_validate({"codeMemory": "2G"}).code_memory_bytes == 2_000_000_000
    made: list[Any] = []  # the real CodeVerifier probes the host's isolation; only its limits matter here
    monkeypatch.setattr(code, "CodeVerifier", lambda workers, limits: made.append(limits))
    make_verifier(TaskType.code, VerificationSpec.model_validate({"codeMemory": "256Mi"}))
    assert made[0].memory_bytes == 256 << 20


def test_defaults_follow_the_documented_peers() -> None:
    g = GradingRunSpec.model_validate(GRADING)
    s = g.sampling
    assert (s.samples_per_question, s.temperature, s.top_p, s.seed) == (1, 0.6, 0.95, 0)
    assert g.grader.method == "prm" and g.grader.solved_rule == "any"
    assert g.grader.levels.mode == "bins" and g.grader.levels.cut_points == [0.2, 0.4, 0.6, 0.8]
    assert g.inference.engine == "vllm" and g.resources.gpus == 1
    # No size of its own: the operator's setting decides (one default, not one in the CRD and another
    # in the chart)
    assert g.output.create is not None and g.output.create.size is None and g.output.retention == "Retain"
    prm = PrmSpec.model_validate({"model": MODEL})
    assert (prm.kind, prm.aggregation, prm.step_split) == ("discriminative", "min", "blankLines")
    d = GradingRunSpec.model_validate(GRADING)  # a second instance must not share mutable defaults
    d.scheduling.node_selector["a"] = "b"
    assert g.scheduling.node_selector == {}
    dj = DistillationJob.model_validate({"metadata": meta(), "spec": DISTIL}).spec
    assert (dj.size, dj.seed, dj.shortfall, dj.resources.gpus) == (2000, 0, "redistribute", 0)
    assert (dj.teacher.sampling.temperature, dj.teacher.sampling.top_p) == (0.6, 0.95)
    assert dj.teacher.sampling.max_tokens == 32768 and dj.teacher.max_attempts == 4
    assert dj.distribution.prior is not None and dj.distribution.prior.weights == [5, 4, 3, 2, 1]
    s = SFTJobSpec.model_validate(SFT)
    assert 1e-5 <= s.training.learning_rate <= 5e-5 and s.training.epochs == 3
    assert s.training.assistant_only_loss and s.training.packing and s.deepspeed.stage == 3
    assert DifficultyBankSpec().resources.gpus == 0


VALID: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (ModelSpec, {"hubId": "Qwen/Qwen2.5-7B", "revision": "main", "token": {"name": "hf", "key": "t"}}),
    (OutputSpec, {"existingClaim": "shared", "subPath": "runs/a"}),
    (PrmSpec, {"kind": "llmJudge", "endpoint": ENDPOINT}),
    (LevelMapping, {"mode": "quantiles", "cutPoints": [0.1, 0.5, 0.6, 0.95]}),
    (GradingRunSpec, {**GRADING, "grader": {"method": "passRate"}, "sampling": {"samplesPerQuestion": 4}}),
    (GradingRunSpec, {**GRADING, "inference": {"engine": "http", "endpoint": ENDPOINT}}),
    (DistributionSpec, {"table": {1: 3, "2": 2.5, 0: 0}}),
    (DistributionSpec, {"fromGradingRun": {"name": "eval"}, "excludeEasy": True}),
    (PriorSpec, {"weights": [4, 3, 2, 1, 0]}),
    (TeacherSpec, {"server": {"model": MODEL, "vllm": {"tensorParallelSize": 2}}}),
    (DifficultyBankSpec, {"sources": [{"gradingRunRef": {"name": "g"}}, {"path": "/data/graded"}]}),
    (DifficultyBankSpec, {"sources": [{"path": "/data/graded"}], "model": MODEL}),
    (SFTJobSpec, {"dataset": {"path": "/data/sft.jsonl"}, "model": MODEL, "deepspeed": {"stage": 2}}),
    (DeepSpeedSpec, {"stage": 3, "offloadParams": True, "offloadOptimizer": True}),
]

INVALID: list[tuple[type[BaseModel], dict[str, Any], str]] = [
    (ModelSpec, {}, "model: set exactly one of path, hubId (got none)"),
    (ModelSpec, {"path": "/m", "hubId": "a/b"}, "model: set exactly one of path, hubId (got path, hubId)"),
    (OutputSpec, {"existingClaim": "c", "create": {}}, "output: set exactly one of create, existingClaim"),
    (OutputSpec, {}, "output: set exactly one of create, existingClaim (got none)"),
    (OutputSpec, {"existingClaim": "c", "retention": "Keep"}, "Input should be 'Retain' or 'Delete'"),
    (PrmSpec, {"kind": "llmJudge", "model": MODEL}, "llmJudge needs endpoint"),
    (PrmSpec, {"model": MODEL, "endpoint": ENDPOINT}, "other kinds need model (and no endpoint)"),
    (LevelMapping, {"cutPoints": [0.5, 0.4, 0.6, 0.8]}, "cutPoints must be strictly increasing"),
    (LevelMapping, {"cutPoints": [0.2, 0.4, 0.6]}, "at least 4 items"),
    (LevelMapping, {"cutPoints": [0, 0.4, 0.6, 0.8]}, "greater than 0"),
    (
        GradingRunSpec,
        {**GRADING, "grader": {"method": "passRate"}},
        "passRate needs sampling.samplesPerQuestion of at least 2",
    ),
    (GradingRunSpec, {**GRADING, "questions": {"path": "q.jsonl"}}, "grader.prm is required for method prm"),
    (
        GradingRunSpec,
        {**GRADING, "inference": {"engine": "http"}},
        "endpoint must be set when engine is http",
    ),
    (GradingRunSpec, {**GRADING, "sampling": {"temperature": -1}}, "greater than or equal to 0"),
    (GradingRunSpec, {**GRADING, "sampling": {"n": 4}}, "sampling.n is now sampling.samplesPerQuestion"),
    (GradingRunSpec, {**GRADING, "verification": {"codeMemory": "32Mi"}}, "codeMemory 32Mi is below 64Mi"),
    (GradingRunSpec, {**GRADING, "verification": {"codeMemory": "1GB"}}, "String should match pattern"),
    (
        GradingRunSpec,
        {**GRADING, "verification": {"codeMemoryMb": 512}},
        "verification.codeMemoryMb is now verification.codeMemory",
    ),
    (GradingRunSpec, {**GRADING, "shards": 0}, "greater than or equal to 1"),
    (GradingRunSpec, {**GRADING, "resources": {"memory": "lots"}}, "String should match pattern"),
    (
        GradingRunSpec,
        {**GRADING, "env": [{"name": "A", "value": "1", "secretKeyRef": {"name": "s", "key": "k"}}]},
        "env A: set exactly one of value, secretKeyRef",
    ),
    (DistributionSpec, {"prior": {}, "table": {1: 1}}, "set exactly one of fromGradingRun, prior, table"),
    (DistributionSpec, {"table": {7: 1}}, "table keys must be levels 0 to 5"),
    (DistributionSpec, {"table": {1: 0, 2: 0}}, "needs at least one positive share"),
    (DistributionSpec, {"table": {1: -1, 2: 3}}, "greater than or equal to 0"),
    (PriorSpec, {"weights": [5, 4, 4, 2, 1]}, "strictly decreasing"),
    (PriorSpec, {"weights": [5, 4, 3, 2, -1]}, "greater than or equal to 0"),
    (TeacherSpec, {}, "teacher: set exactly one of endpoint, server (got none)"),
    (TeacherSpec, {"endpoint": {**ENDPOINT, "url": "teacher:8000"}}, "String should match pattern"),
    (
        DifficultyBankSpec,
        {"sources": [{"path": "/data/graded"}]},
        "model is required when every source is a path",
    ),
    (DifficultyBankSpec, {"sources": [{}]}, "sources[]: set exactly one of gradingRunRef, path"),
    (SFTJobSpec, {"dataset": {"path": "/d.jsonl"}}, "model is required when dataset is a path"),
    (
        SftDataset,
        {"path": "/d", "distillationJobRef": {"name": "dj"}},
        "set exactly one of distillationJobRef",
    ),
    (DeepSpeedSpec, {"stage": 2, "offloadParams": True}, "offloadParams needs stage 3"),
    (DeepSpeedSpec, {"stage": 1}, "Input should be 0, 2 or 3"),
    (SFTJobSpec, {**SFT, "training": {"learningRate": 0}}, "greater than 0"),
]


@pytest.mark.parametrize(("cls", "data"), VALID, ids=lambda v: getattr(v, "__name__", ""))
def test_valid_specs(cls: type[BaseModel], data: dict[str, Any]) -> None:
    cls.model_validate(data)


@pytest.mark.parametrize(("cls", "data", "message"), INVALID, ids=lambda v: getattr(v, "__name__", ""))
def test_invalid_specs_name_the_mistake(cls: type[BaseModel], data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        cls.model_validate(data)
    assert message in str(err.value)


def _cel_rules(cls: type[BaseModel]) -> list[dict[str, str]]:
    extra: Any = cls.model_config.get("json_schema_extra") or {}
    rules: list[dict[str, str]] = extra.get("x-kubernetes-validations", [])
    return [r for r in rules if "oldSelf" not in r["rule"]]


def _cel_verdict(rule: str, data: dict[str, Any]) -> bool:
    env = celpy.Environment()
    program = env.program(env.compile(rule))
    result = program.evaluate({"self": json_to_cel(data)})
    assert isinstance(result, celtypes.BoolType), f"{rule!r} did not evaluate: {result!r}"
    return bool(result)


def _decided_by_a_model_rule(cls: type[BaseModel], data: dict[str, Any]) -> bool:
    """True when pydantic rejects `data` only through the model's own validator (the CEL twin's job),
    not through a field bound, which the CRD schema enforces as minimum/maximum/enum instead."""
    try:
        cls.model_validate(data)
    except ValidationError as err:
        return all(e["type"] == "value_error" and e["loc"] == () for e in err.errors())
    return False


# The twin check: each CEL rule of the model must agree with pydantic on the same raw object.
TWIN_CASES = [(c, d) for c, d in VALID if _cel_rules(c)] + [
    (c, d) for c, d, _ in INVALID if _decided_by_a_model_rule(c, d)
]


def test_the_twin_check_covers_every_model_rule_kind() -> None:
    rejected = {c.__name__ for c, d in TWIN_CASES if _decided_by_a_model_rule(c, d)}
    assert rejected >= {
        "ModelSpec",
        "OutputSpec",
        "PrmSpec",
        "LevelMapping",
        "GradingRunSpec",
        "DistributionSpec",
        "PriorSpec",
        "TeacherSpec",
        "DifficultyBankSpec",
        "SFTJobSpec",
        "SftDataset",
        "DeepSpeedSpec",
    }


@pytest.mark.parametrize(("cls", "data"), TWIN_CASES, ids=lambda v: getattr(v, "__name__", ""))
def test_cel_rules_agree_with_pydantic(cls: type[BaseModel], data: dict[str, Any]) -> None:
    try:
        cls.model_validate(data)
        accepted = True
    except ValidationError:
        accepted = False
    raw = dict(data)
    if "table" in raw and isinstance(raw["table"], dict):  # the API server sees string keys
        raw["table"] = {str(k): v for k, v in raw["table"].items()}
    verdicts = [_cel_verdict(r["rule"], raw) for r in _cel_rules(cls)]
    if accepted:
        assert all(verdicts), [r["message"] for r, v in zip(_cel_rules(cls), verdicts, strict=True) if not v]
    else:
        assert not all(verdicts), f"pydantic rejects but every CEL rule of {cls.__name__} accepts {data}"


def _models(cls: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    if cls in seen:
        return
    seen.add(cls)
    for info in cls.model_fields.values():
        stack = [info.annotation]
        while stack:
            tp = stack.pop()
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                _models(tp, seen)
            stack.extend(get_args(tp))
            if get_origin(tp) is not None:
                stack.append(get_origin(tp))


def test_every_field_of_every_kind_has_a_description() -> None:
    seen: set[type[BaseModel]] = set()
    for cls in RESOURCE_KINDS.values():
        _models(cls, seen)
    missing = [f"{m.__name__}.{n}" for m in seen for n, f in m.model_fields.items() if not f.description]
    assert len(seen) > 40 and missing == []


def test_kind_classvars_follow_the_contract() -> None:
    assert list(RESOURCE_KINDS) == ["GradingRun", "DifficultyBank", "DistillationJob", "SFTJob"]
    plurals = {cls.PLURAL for cls in RESOURCE_KINDS.values()}
    assert plurals == {"gradingruns", "difficultybanks", "distillationjobs", "sftjobs"}
    for cls in RESOURCE_KINDS.values():
        columns = {c["name"]: c["jsonPath"] for c in cls.PRINTER_COLUMNS}
        assert columns["Phase"] == ".status.phase" and columns["Age"] == ".metadata.creationTimestamp"
        assert cls.SHORT_NAMES and cls.model_fields["kind"].default == cls.KIND


def _grading(**spec: Any) -> GradingRun:
    return GradingRun.model_validate({"metadata": meta("g"), "spec": {**GRADING, **spec}})


def test_check_update_reports_each_immutable_field_with_its_path() -> None:
    old = _grading()
    assert check_update(old, _grading(shards=8, prompt={"system": "be brief"})) == []
    new = _grading(questions={"path": "other.jsonl", "task": "code"}, model={"path": "/models/other"})
    assert check_update(old, new) == [
        "spec.questions: questions is immutable",
        "spec.model: model is immutable",
    ]
    assert check_update(old, _grading(output={"existingClaim": "c"})) == ["spec.output: output is immutable"]
    renamed = GradingRun.model_validate({"metadata": meta("h"), "spec": GRADING})
    assert "cannot change" in check_update(old, renamed)[0]


def test_check_update_allows_scheduling_changes_only_while_suspended() -> None:
    placed = {"nodeSelector": {"gpu": "h100"}}
    message = "spec: scheduling can only be changed while spec.suspend is true"
    assert check_update(_grading(), _grading(scheduling=placed)) == [message]
    assert check_update(_grading(suspend=True), _grading(scheduling=placed)) == []
    assert check_update(_grading(), _grading(suspend=True, scheduling=placed)) == []


def test_check_update_on_distillation_size_and_optional_fields() -> None:
    def job(**spec: Any) -> DistillationJob:
        return DistillationJob.model_validate({"metadata": meta("d"), "spec": {**DISTIL, **spec}})

    assert check_update(job(), job(size=10)) == ["spec.size: size is immutable"]
    assert check_update(job(), job(distribution={"table": {1: 1}})) == [
        "spec.distribution: distribution is immutable"
    ]
    assert check_update(job(), job(teacher={"endpoint": {**ENDPOINT, "concurrency": 4}})) == []


def test_immutable_rules_are_cel_transition_rules_on_the_fields() -> None:
    extra = GradingRunSpec.model_fields["questions"].json_schema_extra
    assert extra == {"x-kubernetes-validations": [{"rule": IMMUTABLE, "message": "questions is immutable"}]}


def test_references_and_dependency_graph() -> None:
    pool = _grading(bankRef={"name": "bank"})
    bank = DifficultyBank.model_validate(
        {"metadata": meta("bank"), "spec": {"sources": [{"gradingRunRef": {"name": "extra"}}]}}
    )
    spec = copy.deepcopy(DISTIL)
    spec["distribution"] = {"fromGradingRun": {"name": "eval"}}
    job = DistillationJob.model_validate({"metadata": meta("dj"), "spec": spec})
    sft = SFTJob.model_validate({"metadata": meta("sft"), "spec": SFT})
    assert references(pool) == []
    assert references(bank) == [("GradingRun", "extra")]
    assert references(job) == [("DifficultyBank", "bank"), ("GradingRun", "eval")]
    assert references(sft) == [("DistillationJob", "dj")]
    graph = dependency_graph([pool, bank, job, sft])
    assert graph[("DifficultyBank", "bank")] == [("GradingRun", "extra"), ("GradingRun", "g")]
    assert graph[("GradingRun", "g")] == []
