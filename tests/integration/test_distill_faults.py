"""The teacher misbehaves (tests/fault_server.py: 429, 500, resets, stalls, empty and malformed bodies,
fewer choices than asked, requests that fail for good): every sampled question ends in exactly one
record, none lost or duplicated. And bad inputs stop with a clear error before any teacher call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import free_port
from distill_helpers import entry, job, sum_bank, write_bank
from fault_server import FaultServer

from adacot.api.generation import Endpoint, PromptSpec
from adacot.artifacts import SftExample, read_manifest, read_records, verify_artifact
from adacot.artifacts.rows import DistilledQuestion
from adacot.backends.base import Generator
from adacot.backends.openai_http import OpenAIGenerator
from adacot.backends.ratelimit import Backoff
from adacot.backends.teacher_server import TeacherServerError
from adacot.cli.main import main
from adacot.pipelines.distillation_job import run_distillation_job
from adacot.stages.prompts import user_text

pytestmark = pytest.mark.integration
QUESTIONS = 12
# The fault server echoes the prompt in its answer ("answer to <prompt> (seed s, choice c)"), so a
# question that carries "</think> ... \boxed{v}" gets an R1-shaped answer whose final value is v:
# right when v is the reference (even i), wrong otherwise (odd i).
FAULTS = {0: ["429:0", "500"], 1: ["drop", "empty"], 2: ["malformed"], 3: ["fewer"], 4: ["stall"],
          5: ["500"] * 20, 6: ["429:0"] * 2 + ["fewer"]}  # fmt: skip
FAILS_FOR_GOOD = 5


def echo_bank() -> list:  # type: ignore[type-arg]
    return [
        entry(
            f"e{i:02d}",
            f"Q{i}: add {i} and {i}. </think> So \\boxed{{{2 * i}}}",
            str(2 * i + i % 2),
            level=1 + i % 3,
        )
        for i in range(QUESTIONS)
    ]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    prompt = PromptSpec(instruction="")
    script = {user_text(echo_bank()[i].question, prompt): plan for i, plan in FAULTS.items()}
    with FaultServer(script=script, stall_s=5.0) as running:
        yield running


def test_faults_lose_and_duplicate_nothing(tmp_path: Path, server: FaultServer) -> None:
    bank = write_bank(tmp_path / "bank", echo_bank())
    endpoint = {"url": server.url, "model": "t", "concurrency": 4, "timeoutSeconds": 1, "maxRetries": 3}
    teacher_spec = {
        "endpoint": endpoint,
        "maxAttempts": 2,
        "prompt": {"instruction": ""},
        "sampling": {"samplesPerQuestion": 2},
    }
    resource = job(size=QUESTIONS, teacher=teacher_spec)
    made: list[Generator] = []

    def teacher() -> Generator:
        made.append(
            OpenAIGenerator(Endpoint.model_validate(endpoint), backoff=Backoff(0.01, 0.05), rng_seed=0)
        )
        return made[0]

    summary = run_distillation_job(resource, tmp_path / "out", bank_dir=bank, generator=teacher)
    verify_artifact(tmp_path / "out")
    records = list(read_records(tmp_path / "out" / "records", DistilledQuestion))
    assert [r.question_id for r in records] == [f"e{i:02d}" for i in range(QUESTIONS)]
    for i, record in enumerate(records):
        assert len(record.attempts) == 2 * record.rounds == len(record.outcomes)
        right = i % 2 == 0 and i != FAILS_FOR_GOOD
        assert record.accepted == right, (i, record.outcomes)
        assert record.rounds == (1 if right else 2)
    assert records[FAILS_FOR_GOOD].outcomes == ["generation_error"] * 4
    assert set(records[1].outcomes) == {"wrong:not_equivalent"}  # odd: wrong, after its faults were retried
    kept = [e.question_id for e in read_records(tmp_path / "out", SftExample)]
    assert kept == [f"e{i:02d}" for i in range(0, QUESTIONS, 2) if i != FAILS_FOR_GOOD]
    usage = summary["usage"]
    assert usage["retries"] >= 8 and usage["failures"] == 2
    assert summary["outcomes"]["generation_error"] == 4 and summary["kept"] == len(kept)
    assert len(server.attempts(user_text(echo_bank()[4].question, PromptSpec(instruction="")))) == 2  # stall


# ------------------------------------------------------------------------------------------ bad inputs


def never() -> Generator:
    raise AssertionError("the teacher must not be built for a bad input")


@pytest.mark.parametrize(
    ("entries", "spec", "message"),
    [
        ([], {}, "holds no questions"),
        (sum_bank(4), {"size": 5}, "N=5 is larger than the bank"),
        (sum_bank(6), {"size": 6, "shortfall": "fail", "distribution": {"table": {"4": 1}}},
         "too few questions at level 4"),
        (sum_bank(6), {"distribution": {"fromGradingRun": {"name": "evalrun"}}},
         "give the GradingRun's output"),
    ],
)  # fmt: skip
def test_bad_inputs_fail_before_the_teacher(tmp_path: Path, entries: list, spec: dict, message: str) -> None:  # type: ignore[type-arg]
    bank = write_bank(tmp_path / "bank", entries)
    with pytest.raises(ValueError, match=message):
        run_distillation_job(job(**spec), tmp_path / "out", bank_dir=bank, generator=never)


def test_refused_teacher_url_is_a_clear_error(tmp_path: Path) -> None:
    bank = write_bank(tmp_path / "bank", sum_bank(6))
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    with pytest.raises(TeacherServerError, match="cannot be reached"):
        run_distillation_job(
            job(teacher={"endpoint": {"url": url, "model": "t"}}), tmp_path / "out", bank_dir=bank
        )
    result = CliRunner().invoke(
        main, ["distill", "--bank", str(bank), "--teacher-url", url, "--size", "6", "--table", "1=1,2=1,3=1",
               "--out", str(tmp_path / "cli"), "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 1 and "cannot be reached" in result.output and "Traceback" not in result.output


def test_a_restart_with_another_spec_is_refused(tmp_path: Path) -> None:
    bank = write_bank(tmp_path / "bank", sum_bank(6))
    out = tmp_path / "out"
    with pytest.raises(TeacherServerError):  # the sample is saved before the teacher is probed
        run_distillation_job(job(), out, bank_dir=bank)
    assert (out / "sample.jsonl").is_file()
    with pytest.raises(ValueError, match="saved sample was drawn from another bank or spec"):
        run_distillation_job(job(seed=7), out, bank_dir=bank, generator=never)


def test_cli_spec_and_stage_entry_points(tmp_path: Path, server: FaultServer) -> None:
    """`adacot distill --spec` and `adacot stage distillationjob` run the job against a live endpoint (the
    fault server answering normally: the default teacher path, /v1/models probe included)."""
    bank = write_bank(tmp_path / "bank", echo_bank()[6:])  # questions without scripted faults
    teacher = {"endpoint": {"url": server.url, "model": "t"}, "prompt": {"instruction": ""}, "maxAttempts": 1}
    resource = job(size=6, teacher=teacher)
    spec = tmp_path / "dj.yaml"
    spec.write_text(yaml.safe_dump(resource.model_dump(mode="json", by_alias=True, exclude_none=True)))
    runner = CliRunner()
    flags = ["--spec", str(spec), "--bank", str(bank)]
    result = runner.invoke(main, ["distill", *flags, "--out", str(tmp_path / "a"), "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert summary["complete"] and summary["kept"] == 3 and summary["questions"] == 6  # even i are right
    staged = runner.invoke(main, ["stage", "distillationjob", *flags, "--out", str(tmp_path / "b")])
    assert staged.exit_code == 0, staged.output
    assert read_manifest(tmp_path / "b").files == read_manifest(tmp_path / "a").files  # same dataset
