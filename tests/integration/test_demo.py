"""The local runner, end to end on the quick demo: `adacot demo --quick` trains a student and a teacher on
sums, serves the teacher with vLLM, runs distill.yaml through the runner (grade, bank, distil adaptive and
ablation, SFT, evaluate) and writes the report; a rerun reuses the models and skips every stage.

Everything is real: training, the vLLM server, the verifier, the Trainer. The assertions read what the
stages wrote, not what the report claims.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from adacot.cli.main import main
from adacot.demo.spec import QUICK

pytestmark = pytest.mark.integration

STAGES = [
    "GradingRun/pool", "GradingRun/eval", "DifficultyBank/bank", "DistillationJob/adaptive",
    "DistillationJob/ablation", "SFTJob/adaptive-sft", "SFTJob/ablation-sft",
]  # fmt: skip


def table_statuses(output: str) -> dict[str, str]:
    """STAGE -> STATUS from the runner's table (the last one printed)."""
    lines = output[output.rindex("STAGE") :].splitlines()[1:]
    return {p[0]: p[1] for p in (line.split() for line in lines) if len(p) >= 2 and p[0] in STAGES}


def summary(work: Path, kind: str, name: str) -> dict:
    return json.loads((work / "runs" / "default" / kind / name / "summary.json").read_text())


def test_quick_demo_end_to_end_then_a_rerun_skips_everything(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    result = CliRunner().invoke(
        main, ["demo", "--quick", "--workdir", str(work), "--no-progress"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    statuses = table_statuses(result.output)
    assert list(statuses) == STAGES  # dependency order, ties in document order
    assert set(statuses.values()) == {"done"}, result.output

    pool = summary(work, "GradingRun", "pool")
    assert 0 < pool["accuracy"] < 1, pool  # the student solves some questions and fails others
    adaptive = summary(work, "DistillationJob", "adaptive")
    ablation = summary(work, "DistillationJob", "ablation")
    assert adaptive["sampled"] == ablation["sampled"] == QUICK.distill
    assert adaptive["kept"] > 0 and ablation["kept"] > 0  # the teacher's chains of thought pass the verifier
    assert adaptive["target_distribution"] != ablation["target_distribution"]
    evaluation = json.loads(
        (work / "runs" / "default" / "SFTJob" / "adaptive-sft" / "evaluation" / "summary.json").read_text()
    )
    before = evaluation["models"]["base"]["benchmarks"]["test"]["accuracy"]
    assert 0 < before < 1, evaluation

    report = work / "report"
    text = (report / "REPORT.md").read_text()
    facts = json.loads((report / "report.json").read_text())
    assert facts["base-accuracy"] == before
    assert f"{100 * before:.1f} %" in facts["verdict"] and facts["verdict"] in text
    for name in ("levels", "distribution-adaptive", "distribution-ablation", "acceptance", "loss-adaptive",
                 "loss-ablation", "accuracy"):  # fmt: skip
        png = report / f"{name}.png"
        assert f"]({name}.png)" in text
        with Image.open(png) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] >= 400

    again = CliRunner().invoke(
        main, ["demo", "--quick", "--workdir", str(work), "--no-progress"], catch_exceptions=False
    )
    assert again.exit_code == 0, again.output
    assert set(table_statuses(again.output).values()) == {"skipped-complete"}
    assert "reusing the trained model" in again.output and "no teacher server needed" in again.output
    assert json.loads((report / "report.json").read_text())["verdict"] == facts["verdict"]
