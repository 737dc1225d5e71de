"""`adacot demo --prepare-only` (adacot.demo.pipeline.prepare_demo): the student, the teacher and the
question files a cluster's chain reads (docs/quickstart-cluster.md, examples/quickstart/prepare.yaml)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from adacot.cli.main import main as cli
from adacot.demo import spec


def test_prepare_only_writes_the_models_and_questions_and_nothing_else(tmp_path: Path) -> None:
    work = tmp_path / "work"
    args = [
        "demo",
        "--prepare-only",
        "--quick",
        "--student-steps",
        "2",
        "--teacher-steps",
        "3",
        "--workdir",
        str(work),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    for model, steps in (("student", 2), ("teacher", 3)):
        trained = json.loads((work / "models" / model / "pretrain.json").read_text())
        assert trained["steps"] == steps and len(trained["losses"]) == steps
        assert (work / "models" / model / "model.safetensors").is_file()
    sizes = {p.stem: len(p.read_text().splitlines()) for p in (work / "project").glob("*.jsonl")}
    assert sizes == {"pool": spec.QUICK.pool, "eval": spec.QUICK.eval, "test": spec.QUICK.test}
    assert sorted(p.name for p in work.iterdir()) == ["models", "project"]  # no runs, no report, no PRM


def test_step_counts_need_prepare_only(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--teacher-steps", "2", "--workdir", str(tmp_path)])
    assert result.exit_code == 2 and "go with --prepare-only" in result.output
