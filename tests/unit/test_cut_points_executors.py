"""A bank's levels.cutPointsFrom is a dependency both executors honour: `adacot run` plans the named
GradingRun before the bank and hands its artifact over (the whole chain runs here, graded from
pre-generated responses with the pass-rate grader), and the operator waits for that run, mounts it and
names it with --run, which the bank stage reads as cut points, not as questions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from adacot_operator.resolve import ResolvedInputs, input_flags, input_mounts
from adacot_operator.status import Children, compute_status
from click.testing import CliRunner
from k8s_objects import sample, with_conditions

from adacot.api import dependency_graph
from adacot.api.difficulty_bank import DifficultyBank
from adacot.api.grading_run import GradingRun
from adacot.api.status import OutputStatus
from adacot.artifacts import BankEntry, GradedQuestion, read_records
from adacot.artifacts.summary import read_summary
from adacot.cli.main import main
from adacot.runner import PlanError, execute, plan

PASS_RATE = {"method": "passRate", "solvedRule": "threshold", "solvedThreshold": 0.75}
#: Right answers out of four per question: pass rates 0, 1/4, 2/4 (unsolved) and 3/4, 4/4 (solved).
RIGHT = {"eval": [0, 1, 2, 3, 0, 2], "pool": [0, 1, 1, 2, 3, 4, 0]}


def doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "adacot.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def grading(root: Path, name: str, levels: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A pass-rate GradingRun over "What is i + 1?" graded from responses (no model is loaded)."""
    questions, responses = [], []
    for i, right in enumerate(RIGHT[name]):
        qid = f"{name}{i}"
        questions.append({"id": qid, "problem": f"What is {i} + 1? ({name})", "answer": str(i + 1)})
        responses += [{"id": qid, "response": f"so \\boxed{{{i + 1 + (j >= right)}}}"} for j in range(4)]
    (root / f"{name}.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    (root / f"{name}-responses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in responses))
    return {
        "questions": {"path": f"{name}.jsonl", "fields": {"id": "id"}},
        "model": {"path": "student"},
        "responses": {"path": f"{name}-responses.jsonl"},
        "sampling": {"samplesPerQuestion": 4},
        "grader": {**PASS_RATE, "levels": levels},
        "verification": {"workers": 1},
        **extra,
    }


def documents(root: Path) -> list[dict[str, Any]]:
    """The bank first: the order comes from the references, not from the file."""
    (root / "student").mkdir(parents=True, exist_ok=True)
    (root / "student" / "config.json").write_text("{}")
    return [
        doc("DifficultyBank", "bank", {"levels": {"cutPointsFrom": {"name": "eval"}}}),
        doc("GradingRun", "pool", grading(root, "pool", {"mode": "bins"}, bankRef={"name": "bank"})),
        doc("GradingRun", "eval", grading(root, "eval", {"mode": "quantiles"})),
    ]


def write(root: Path, docs: list[dict[str, Any]]) -> Path:
    path = root / "bank.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def test_the_local_runner_grades_the_cut_point_run_first_and_the_bank_freezes_its_cuts(
    tmp_path: Path,
) -> None:
    stages = plan(write(tmp_path, documents(tmp_path)), tmp_path / "work")
    labels = [s.label for s in stages]
    assert labels.index("GradingRun/eval") < labels.index("DifficultyBank/bank")
    (bank,) = [s for s in stages if s.label == "DifficultyBank/bank"]
    assert ("default", "GradingRun", "eval") in bank.inputs
    results = execute(stages)
    assert [r.status for r in results] == ["done"] * 3, [r.reason for r in results]

    eval_summary = read_summary(tmp_path / "work/default/GradingRun/eval")
    summary = read_summary(bank.out_dir)
    assert summary["cut_points_from"] == "eval" and summary["cut_points"] == eval_summary["cut_points"]
    entries = {e.question.id: e.level for e in read_records(bank.out_dir, BankEntry)}
    assert sorted(entries) == [f"pool{i}" for i in range(7)]  # no eval question in the bank
    eval_levels = {
        r.key: r.level for r in read_records(tmp_path / "work/default/GradingRun/eval", GradedQuestion)
    }
    # Equal pass rates on both sides get equal levels: one scale for P_eval and the bank.
    assert entries["pool0"] == entries["pool6"] == eval_levels["eval0"] == eval_levels["eval4"] == 5
    assert entries["pool1"] == entries["pool2"] == eval_levels["eval1"]
    assert entries["pool3"] == eval_levels["eval2"] and entries["pool4"] == entries["pool5"] == 0


def test_a_cut_point_run_missing_from_the_file_is_a_plan_error(tmp_path: Path) -> None:
    docs = documents(tmp_path)
    docs[0]["spec"]["levels"]["cutPointsFrom"]["name"] = "no-such-run"
    with pytest.raises(PlanError, match=r"spec.levels.cutPointsFrom.name: no GradingRun named 'no-such-run'"):
        plan(write(tmp_path, docs), tmp_path / "work")


BANK = sample("DifficultyBank", "qwen7b-bank", levels={"cutPointsFrom": {"name": "qwen7b-eval"}})


def test_the_operator_waits_for_the_cut_point_run() -> None:
    resources = [
        DifficultyBank.model_validate(BANK),
        GradingRun.model_validate(sample("GradingRun", "qwen7b-pool")),
    ]
    graph = dependency_graph(resources)
    assert set(graph[("DifficultyBank", "qwen7b-bank")]) == {
        ("GradingRun", "qwen7b-pool"),
        ("GradingRun", "qwen7b-eval"),
    }
    pool_done = with_conditions(sample("GradingRun", "qwen7b-pool"), Complete="True")
    eval_running = with_conditions(sample("GradingRun", "qwen7b-eval"), Running="True")
    producers = {("GradingRun", "qwen7b-pool"): pool_done, ("GradingRun", "qwen7b-eval"): eval_running}
    status = compute_status(BANK, Children(), producers, datetime(2026, 1, 1, tzinfo=UTC))
    assert status["phase"] == "WaitingForInputs"
    (inputs,) = [c for c in status["conditions"] if c["type"] == "InputsReady"]
    assert "GradingRun qwen7b-eval" in inputs["message"]


def test_the_operator_mounts_the_cut_point_run_and_the_stage_reads_it_as_cut_points(tmp_path: Path) -> None:
    bank = DifficultyBank.model_validate(BANK)
    outputs = {
        ("GradingRun", "qwen7b-pool"): OutputStatus(claim="c", path="ml/GradingRun/qwen7b-pool"),
        ("GradingRun", "qwen7b-eval"): OutputStatus(claim="c", path="ml/GradingRun/qwen7b-eval"),
    }
    flags = input_flags(bank, input_mounts(bank, ResolvedInputs(outputs=outputs), "/mnt/adacot"))
    assert flags == ["--run", "qwen7b-eval=/mnt/adacot/inputs/gradingrun-qwen7b-eval",
                     "--run", "qwen7b-pool=/mnt/adacot/inputs/gradingrun-qwen7b-pool"]  # fmt: skip
    # The pod's command with those flags, pointing at real artifacts graded by `adacot run`.
    docs = documents(tmp_path)
    for d in docs:
        d["metadata"]["name"] = {"bank": "qwen7b-bank", "pool": "qwen7b-pool", "eval": "qwen7b-eval"}[
            d["metadata"]["name"]
        ]
    docs[0]["spec"]["levels"]["cutPointsFrom"]["name"] = "qwen7b-eval"
    docs[1]["spec"]["bankRef"]["name"] = "qwen7b-bank"
    runs = [s for s in plan(write(tmp_path, docs), tmp_path / "work") if s.label.startswith("GradingRun")]
    assert [r.status for r in execute(runs)] == ["done", "done"]
    spec = tmp_path / "bank-only.yaml"
    spec.write_text(yaml.safe_dump(docs[0]))
    where = {f"/mnt/adacot/inputs/gradingrun-{s.resource.metadata.name}": str(s.out_dir) for s in runs}
    args = ["stage", "difficultybank", "--spec", str(spec), "--out", str(tmp_path / "bank")]
    for flag, value in zip(flags[::2], flags[1::2], strict=True):
        name, _, mount = value.partition("=")
        args += [flag, f"{name}={where[mount]}"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = read_summary(tmp_path / "bank")
    assert summary["cut_points_from"] == "qwen7b-eval" and summary["questions"] == 7
