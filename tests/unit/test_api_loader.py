"""The shared YAML loader: samples, multi-document files, round trips and every error's wording."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from adacot.api import RESOURCE_KINDS, DistillationJob, GradingRun, dependency_graph
from adacot.api.loader import ResourceError, dump_resource, load_resources
from adacot.api.status import Condition, ConditionType, GradingRunStatus, Phase

SAMPLES = Path(__file__).resolve().parents[2] / "crds" / "samples"
INVALID = sorted((SAMPLES / "invalid").glob("*.yaml"))
SINGLE = {
    "gradingrun.yaml": "GradingRun",
    "difficultybank.yaml": "DifficultyBank",
    "distillationjob.yaml": "DistillationJob",
    "sftjob.yaml": "SFTJob",
}

GRADING_DOC = """\
apiVersion: adacot.dev/v1alpha1
kind: GradingRun
metadata: {name: NAME}
spec:
  questions: {path: q.jsonl, task: code}
  model:
    path: /m
"""


def grading(name: str = "g") -> str:
    return GRADING_DOC.replace("NAME", name)


@pytest.mark.parametrize(("filename", "kind"), sorted(SINGLE.items()))
def test_each_single_sample_is_one_resource_of_its_kind(filename: str, kind: str) -> None:
    [resource] = load_resources(SAMPLES / filename)
    assert isinstance(resource, RESOURCE_KINDS[kind]) and resource.metadata.namespace == "default"


def test_distill_yaml_chains_all_four_kinds_in_dependency_order() -> None:
    resources = load_resources(str(SAMPLES / "distill.yaml"))
    assert [r.key for r in resources] == [
        ("GradingRun", "qwen7b-pool"),
        ("GradingRun", "qwen7b-eval"),
        ("DifficultyBank", "qwen7b-bank"),
        ("DistillationJob", "qwen7b-distil"),
        ("SFTJob", "qwen7b-sft"),
    ]
    graph = dependency_graph(resources)
    assert graph[("DifficultyBank", "qwen7b-bank")] == [("GradingRun", "qwen7b-pool")]
    assert graph[("DistillationJob", "qwen7b-distil")] == [
        ("DifficultyBank", "qwen7b-bank"),
        ("GradingRun", "qwen7b-eval"),
    ]
    assert graph[("SFTJob", "qwen7b-sft")] == [("DistillationJob", "qwen7b-distil")]
    job = resources[3]
    assert isinstance(job, DistillationJob) and job.spec.teacher.endpoint is not None
    assert (
        job.spec.teacher.endpoint.api_key is not None and job.spec.teacher.endpoint.api_key.key == "api-key"
    )


def _no_none(value: Any) -> bool:
    if isinstance(value, dict):
        return all(v is not None and _no_none(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_none(v) for v in value)
    return True


@pytest.mark.parametrize("filename", [*sorted(SINGLE), "distill.yaml"])
def test_round_trip_load_dump_load_is_equal(filename: str) -> None:
    first = load_resources(SAMPLES / filename)
    dumped = [dump_resource(r) for r in first]
    assert all(_no_none(d) for d in dumped)
    assert all(re.fullmatch(r"[a-z][A-Za-z0-9]*", k) for k in dumped[0]["spec"])  # camelCase on the wire
    text = yaml.safe_dump_all(dumped, sort_keys=False)
    assert load_resources(text) == first


def test_round_trip_keeps_status_and_explicit_nulls_that_differ_from_defaults() -> None:
    [run] = load_resources(grading())
    assert isinstance(run, GradingRun)
    run.spec.questions.fields.answer = None  # default is "answer": the null must survive the dump
    run.status = GradingRunStatus(
        phase=Phase.Running,
        conditions=[
            Condition(
                type=ConditionType.Running,
                status="True",
                reason="JobRunning",
                last_transition_time="2025-01-02T03:04:05Z",
            )
        ],
        distribution={"0": 0.5, "3": 0.5},
    )
    data = dump_resource(run)
    assert data["spec"]["questions"]["fields"]["answer"] is None
    assert data["status"]["conditions"][0]["lastTransitionTime"] == "2025-01-02T03:04:05Z"
    assert load_resources(yaml.safe_dump(data)) == [run]


def test_multi_document_skips_empty_documents_and_counts_them_in_messages() -> None:
    text = "---\n" + grading("a") + "---\n---\n# only a comment\n---\n" + grading("b")
    assert [r.metadata.name for r in load_resources(text)] == ["a", "b"]
    broken = text + "---\n" + grading("c").replace("/m", "/m\n  shards: 0")
    with pytest.raises(ResourceError) as err:
        load_resources(broken, filename="chain.yaml")
    assert str(err.value) == (
        "chain.yaml, document 5 (GradingRun/c): spec.shards: Input should be "
        "greater than or equal to 1 (line 28)"
    )


def test_message_format_names_file_document_kind_name_and_field(tmp_path: Path) -> None:
    docs = [grading("a"), grading("b"), (SAMPLES / "distillationjob.yaml").read_text()]
    docs[2] = (
        docs[2]
        .replace("name: qwen7b-distil", "name: qwen-distil")
        .replace("temperature: 0.6", "temperature: 2.5")
    )
    path = tmp_path / "distill.yaml"
    path.write_text("---\n".join(docs))
    with pytest.raises(ResourceError) as err:
        load_resources(path, filename="distill.yaml")
    assert str(err.value).startswith(
        "distill.yaml, document 3 (DistillationJob/qwen-distil): "
        "spec.teacher.sampling.temperature: Input should be less than or "
        "equal to 2 (line "
    )


def test_every_failing_field_is_listed_one_per_line() -> None:
    bad = grading().replace("/m", "/m\n  shards: 0\n  sampling: {topP: 2}\n  env: [{name: A}]")
    with pytest.raises(ResourceError) as err:
        load_resources(bad)
    lines = str(err.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "spec.env[0]",
        "spec.sampling.topP",
        "spec.shards",
    ]
    assert "env A: set exactly one of value, secretKeyRef (got none) (line 10)" in lines[0]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_every_invalid_sample_is_rejected_with_its_expected_message(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: ")
    with pytest.raises(ResourceError) as err:
        load_resources(path)
    assert first.removeprefix("# expect: ") in str(err.value)
    assert str(err.value).startswith(f"{path}, document 1 (")


def test_invalid_samples_cover_each_kind_of_mistake() -> None:
    names = {p.stem for p in INVALID}
    assert names >= {
        "missing-required-field",
        "out-of-range",
        "two-one-of-choices",
        "unknown-field",
        "bad-enum-value",
        "bad-name",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            grading().replace("adacot.dev/v1alpha1", "adacot.dev/v1"),
            "<string>, document 1 (GradingRun/g): apiVersion: expected adacot.dev/v1alpha1, "
            "got 'adacot.dev/v1'",
        ),
        (
            grading().replace("kind: GradingRun", "kind: ConfigMap"),
            "document 1 (ConfigMap/g): kind: expected one of GradingRun, DifficultyBank, DistillationJob, "
            "SFTJob, got 'ConfigMap'",
        ),
        (grading().replace("kind: GradingRun\n", ""), "document 1: kind: expected one of"),
        ("- a\n- b\n", "document 1: expected a mapping with apiVersion, kind, metadata and spec, got list"),
        (grading() + "---\nplain words\n", "document 2: expected a mapping"),
        (grading() + "---\n" + grading(), "document 2 (GradingRun/g): duplicate of document 1"),
        (
            grading().replace("metadata: {name: g}", "metadata: {name: g, name: h}"),
            "document 1, line 3: duplicate key 'name'",
        ),
        (grading() + "  model: [\n", "<string>, line 9, column 1: invalid YAML"),
        (
            grading().replace("metadata: {name: g}", "metadata: {name: bad_name}"),
            "metadata.name: must be a DNS-1123 label",
        ),
        (
            grading().replace("metadata: {name: g}", "metadata: {name: " + "a" * 53 + "}"),
            "metadata.name: String should have at most 52 characters",
        ),
        (
            grading().replace("/m", "/m\n  resources: {memory: lots}"),
            "spec.resources.memory: must be a Kubernetes quantity such as 500m, 8 or 64Gi "
            "(got 'lots') (line 8)",
        ),
    ],
)
def test_bad_files_get_clear_errors(text: str, message: str) -> None:
    with pytest.raises(ResourceError) as err:
        load_resources(text)
    assert message in str(err.value)


def test_same_name_in_two_namespaces_is_no_duplicate() -> None:
    other = grading().replace("metadata: {name: g}", "metadata: {name: g, namespace: team-b}")
    assert [r.metadata.namespace for r in load_resources(grading() + "---\n" + other)] == [
        "default",
        "team-b",
    ]


def test_streams_paths_and_missing_files(tmp_path: Path) -> None:
    stream = io.StringIO(grading())
    stream.name = "from-stream.yaml"
    [from_stream] = load_resources(stream)
    path = tmp_path / "g.yaml"
    path.write_text(grading())
    assert load_resources(path) == load_resources(str(path)) == [from_stream]
    with pytest.raises(ResourceError, match=r"nope\.yaml: cannot read"):
        load_resources(str(tmp_path / "nope.yaml"))
    with pytest.raises(ResourceError, match=r"^from-stream\.yaml, document 1 \(GradingRun/g\): spec\.model"):
        load_resources(
            io.StringIO(grading().replace("  model:\n    path: /m\n", "")), filename="from-stream.yaml"
        )


def test_live_objects_from_the_api_server_load() -> None:
    live = grading().replace(
        "metadata: {name: g}",
        (
            "metadata:\n  name: g\n  namespace: ml\n  uid: 1b4e28ba-2fa1-11d2-883f-0016d3cca427\n"
            "  resourceVersion: '42'\n  generation: 3\n  creationTimestamp: '2025-01-02T03:04:05Z'\n"
            "  managedFields: [{manager: kubectl, operation: Apply}]\n  finalizers: [adacot.dev/output]"
        ),
    )
    [run] = load_resources(live + "status: {phase: Queued, observedGeneration: 3}\n")
    assert run.metadata.generation == 3 and run.status is not None and run.status.phase == Phase.Queued
