"""Planning of the local runner (order, cycles, references, paths, claims, --only) and the evaluation
figures (unbiased pass@k against brute-force enumeration, unverifiable questions, the comparison)."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from adacot.artifacts.rows import Attempt, GradedQuestion, Question, Verdict
from adacot.runner import PlanError, plan, topological_order
from adacot.stages.evaluate import benchmark_scores, comparison, k_values, pass_at_k

# ------------------------------------------------------------------------------------------- ordering


@pytest.mark.parametrize(
    ("graph", "order", "expected"),
    [
        ({"a": [], "b": ["a"], "c": ["b"]}, ["c", "b", "a"], ["a", "b", "c"]),
        # diamond: b and c are both ready after a; document order decides (c before b)
        ({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}, ["d", "c", "b", "a"], ["a", "c", "b", "d"]),
        ({"x": [], "y": []}, ["y", "x"], ["y", "x"]),
        # an input outside the graph (already complete, or another file's) does not block
        ({"a": ["elsewhere"]}, ["a"], ["a"]),
    ],
)
def test_topological_order(graph: dict[str, list[str]], order: list[str], expected: list[str]) -> None:
    assert topological_order(graph, order) == expected


def test_cycle_is_a_clear_error() -> None:
    graph = {("ns", "A", "a"): [("ns", "B", "b")], ("ns", "B", "b"): [("ns", "A", "a")], ("ns", "C", "c"): []}
    with pytest.raises(PlanError, match=r"dependency cycle between A/a, B/b"):
        topological_order(graph, list(graph))


# ------------------------------------------------------------------------------------------- plans


def doc(kind: str, name: str, spec: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "adacot.dev/v1alpha1", "kind": kind, "metadata": meta, "spec": spec}


def model_dir(root: Path, name: str = "student") -> Path:
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text("{}")
    return path


def chain(root: Path) -> list[dict[str, Any]]:
    """The four kinds chained, written consumers first, with paths relative to the YAML's directory."""
    model_dir(root)
    (root / "questions.jsonl").write_text('{"problem": "1+1?", "answer": "2"}\n')
    grading = {"questions": {"path": "questions.jsonl"}, "model": {"path": "student"},
               "sampling": {"samplesPerQuestion": 2}, "grader": {"method": "passRate"}}  # fmt: skip
    return [
        doc("SFTJob", "sft", {"dataset": {"distillationJobRef": {"name": "distil"}}}),
        doc(
            "DistillationJob",
            "distil",
            {
                "bankRef": {"name": "bank"},
                "distribution": {"fromGradingRun": {"name": "eval"}},
                "size": 4,
                "teacher": {"endpoint": {"url": "http://127.0.0.1:9/v1", "model": "t"}},
            },
        ),
        doc("DifficultyBank", "bank", {"sources": [{"gradingRunRef": {"name": "pool"}}]}),
        doc("GradingRun", "eval", copy.deepcopy(grading)),
        doc("GradingRun", "pool", copy.deepcopy(grading)),
    ]


def write(root: Path, docs: list[dict[str, Any]]) -> Path:
    path = root / "distill.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def test_plan_orders_by_references_and_resolves_relative_paths(tmp_path: Path) -> None:
    stages = plan(write(tmp_path, chain(tmp_path)), tmp_path / "work")
    # Inputs first; among ready stages the file's order (eval before pool).
    assert [s.label for s in stages] == [
        "GradingRun/eval", "GradingRun/pool", "DifficultyBank/bank", "DistillationJob/distil", "SFTJob/sft",
    ]  # fmt: skip
    eval_run, _, bank, distil, sft = stages
    spec: Any = eval_run.resource.spec
    assert spec.questions.path == str(tmp_path / "questions.jsonl")
    assert spec.model.path == str(tmp_path / "student")
    assert eval_run.out_dir == tmp_path / "work" / "default" / "GradingRun" / "eval"
    assert bank.inputs == (("default", "GradingRun", "pool"),)
    assert set(distil.inputs) == {("default", "DifficultyBank", "bank"), ("default", "GradingRun", "eval")}
    # The SFTJob without a model trains the bank's model (from its GradingRun), as the operator does.
    trained: Any = getattr(sft.resource.spec, "model", None)
    assert trained is not None and trained.path == str(tmp_path / "student")


def test_plan_is_deterministic_and_a_bankref_feeds_the_bank(tmp_path: Path) -> None:
    docs = chain(tmp_path)
    docs[2]["spec"]["sources"] = []  # the bank is fed by the pool's bankRef instead
    docs[4]["spec"]["bankRef"] = {"name": "bank"}
    first = [s.label for s in plan(write(tmp_path, docs), tmp_path / "w")]
    assert first == [s.label for s in plan(write(tmp_path, docs), tmp_path / "w")]
    assert first.index("GradingRun/pool") < first.index("DifficultyBank/bank")


def test_missing_reference_names_document_and_field(tmp_path: Path) -> None:
    docs = chain(tmp_path)
    docs[1]["spec"]["bankRef"] = {"name": "no-such-bank"}
    path = write(tmp_path, docs)
    with pytest.raises(PlanError) as error:
        plan(path, tmp_path / "w")
    assert str(error.value) == (
        f"{path}, document 2 (DistillationJob/distil): spec.bankRef.name: no DifficultyBank named "
        "'no-such-bank' in namespace 'default' of this file"
    )


def test_references_stay_in_their_namespace(tmp_path: Path) -> None:
    docs = chain(tmp_path)
    docs[2]["metadata"]["namespace"] = "other"
    with pytest.raises(PlanError) as error:
        plan(write(tmp_path, docs), tmp_path / "w")
    lines = str(error.value).splitlines()
    assert any(
        "document 2 (DistillationJob/distil): spec.bankRef.name: no DifficultyBank" in x for x in lines
    )
    assert any("document 3 (DifficultyBank/bank): spec.sources[0].gradingRunRef.name" in x for x in lines)


def test_all_problems_are_reported_before_anything_runs(tmp_path: Path) -> None:
    docs = chain(tmp_path)
    docs[3]["spec"]["model"] = {"path": "missing-model"}
    docs[4]["spec"]["questions"]["path"] = "nowhere.jsonl"
    (tmp_path / "not-a-model").mkdir()
    docs[0]["spec"]["model"] = {"path": "not-a-model"}
    path = write(tmp_path, docs)
    with pytest.raises(PlanError) as error:
        plan(path, tmp_path / "w")
    assert str(error.value).splitlines() == [
        f"{path}, document 1 (SFTJob/sft): spec.model.path: {tmp_path / 'not-a-model'} has no config.json "
        "(not a model directory)",
        f"{path}, document 4 (GradingRun/eval): spec.model.path: {tmp_path / 'missing-model'} does not exist",
        f"{path}, document 5 (GradingRun/pool): spec.questions.path: {tmp_path / 'nowhere.jsonl'} "
        "does not exist",
    ]
    assert not (tmp_path / "w").exists()


def test_bank_without_any_input_is_an_error(tmp_path: Path) -> None:
    docs = chain(tmp_path)
    docs[2]["spec"]["sources"] = []
    with pytest.raises(
        PlanError, match=r"document 3 \(DifficultyBank/bank\): spec.sources: the bank has no input"
    ):
        plan(write(tmp_path, docs), tmp_path / "w")


def test_claims_map_to_local_directories(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    model_dir(volume / "models", "s")
    docs = chain(tmp_path)
    for index in (3, 4):
        docs[index]["spec"]["model"] = {"path": "/models/s", "claimName": "models-pvc"}
    path = write(tmp_path, docs)
    with pytest.raises(PlanError, match=r"spec.model.claimName: claim 'models-pvc' has no local directory"):
        plan(path, tmp_path / "w")
    stages = plan(path, tmp_path / "w", claims={"models-pvc": volume})
    model: Any = getattr(stages[0].resource.spec, "model", None)
    assert (model.path, model.claim_name) == (str(volume / "models" / "s"), None)


def test_only_runs_one_stage_whose_inputs_are_complete(tmp_path: Path) -> None:
    path = write(tmp_path, chain(tmp_path))
    assert [s.label for s in plan(path, tmp_path / "w", only="eval")] == ["GradingRun/eval"]
    with pytest.raises(
        PlanError, match=r"--only DifficultyBank/bank: inputs not complete yet: GradingRun/pool"
    ):
        plan(path, tmp_path / "w", only="DifficultyBank/bank")
    with pytest.raises(PlanError, match=r"--only nothing: expected one stage .* found none"):
        plan(path, tmp_path / "w", only="nothing")


def test_loader_errors_pass_through(tmp_path: Path) -> None:
    docs = chain(tmp_path)
    docs[4]["spec"]["sampling"] = {"samplesPerQuestion": 1}  # passRate needs 2 or more
    with pytest.raises(
        ValueError, match=r"document 5 \(GradingRun/pool\).*passRate needs sampling.samplesPerQuestion"
    ):
        plan(write(tmp_path, docs), tmp_path / "w")


# ------------------------------------------------------------------------------------------- figures


def brute_pass_at_k(n: int, c: int, k: int) -> float:
    """Share of all k-subsets of n samples (c correct) holding a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize(
    ("n", "c", "k"), [(n, c, k) for n in (1, 2, 3, 5) for c in range(n + 1) for k in range(1, n + 1)]
)
def test_pass_at_k_matches_enumeration(n: int, c: int, k: int) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k))


def test_pass_at_k_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(2, 1, 3)


@pytest.mark.parametrize(("n", "ks"), [(1, [1]), (2, [1, 2]), (5, [1, 2, 4, 5]), (8, [1, 2, 4, 8])])
def test_k_values(n: int, ks: list[int]) -> None:
    assert k_values(n) == ks


def record(qid: str, verdicts: list[bool | None], reason: str = "wrong_answer") -> GradedQuestion:
    attempts = [
        Attempt(question_id=qid, sample=i, text="x", verdict=Verdict(correct=v, reason="ok" if v else reason))
        for i, v in enumerate(verdicts)
    ]
    return GradedQuestion(
        question=Question(id=qid, problem=qid, answer="1", task="math", source="t"),
        attempts=attempts,
        reason="eval",
    )


def test_benchmark_scores_by_hand() -> None:
    records = [
        record("a", [True, True]),
        record("b", [True, False]),
        record("c", [False, None], reason="timeout"),  # undecided counts as not correct
        record("d", [None, None], reason="gold_unparseable"),  # unverifiable: left out
    ]
    scores = benchmark_scores(records)
    assert scores["questions"] == 3 and scores["unverifiable"] == 1 and scores["samples"] == 2
    assert scores["accuracy"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert scores["pass_at_k"] == pytest.approx({"1": 0.5, "2": 2 / 3})


def test_comparison_rows() -> None:
    after = {"m": {"accuracy": 0.5, "pass_at_k": {"1": 0.5, "2": 0.75}}}
    before: dict[str, dict[str, Any]] = {
        "m": {"accuracy": 0.25, "pass_at_k": {"1": 0.25, "2": 0.5}},
        "other": {"accuracy": 0.1},
    }
    rows = comparison(after, before)
    assert rows == [
        {"benchmark": "m", "metric": "accuracy", "before": 0.25, "after": 0.5, "delta": 0.25},
        {"benchmark": "m", "metric": "pass@2", "before": 0.5, "after": 0.75, "delta": 0.25},
    ]
