"""`adacot stage` checks its producers' artifacts against their MANIFEST.json before use (issue 15): a
data file changed after the producer finished stops the consumer with exit code 2 (ValidationFailed,
no retry) and a message naming the file; an untouched artifact passes; an incomplete one is left to the
pipeline (which refuses it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from store_helpers import manifest, questions

from adacot.api.stage_pod import VALIDATION_FAILED_EXIT_CODE
from adacot.artifacts.rows import Question
from adacot.artifacts.store import ArtifactDir
from adacot.cli.common import RejectedInputs
from adacot.cli.main import main
from adacot.cli.stage import verify_inputs

REPO = Path(__file__).resolve().parents[2]


def artifact(root: Path) -> Path:
    out = ArtifactDir(root)
    out.write_shard("part-00000.jsonl", questions(0, 5), Question)
    out.finalize(manifest())
    return root


def test_untouched_and_incomplete_inputs_pass(tmp_path: Path) -> None:
    verify_inputs(artifact(tmp_path / "run"), None, tmp_path / "not-there")


def test_a_changed_input_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    run = artifact(tmp_path / "run")
    shard = run / "data" / "part-00000.jsonl"
    shard.write_text(shard.read_text().replace('"q', '"x', 1))  # same size, other content
    with pytest.raises(RejectedInputs, match=r"data/part-00000\.jsonl: sha256 differs") as caught:
        verify_inputs(run)
    assert caught.value.exit_code == VALIDATION_FAILED_EXIT_CODE


def test_the_stage_command_refuses_a_forged_input(tmp_path: Path) -> None:
    run = artifact(tmp_path / "run")
    (run / "data" / "part-99999.jsonl").write_text("{}\n")  # a file slipped in beside the listed ones
    docs = list(yaml.safe_load_all((REPO / "crds" / "samples" / "distill.yaml").read_text()))
    bank = next(d for d in docs if d and d["kind"] == "DifficultyBank")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(bank))
    result = CliRunner().invoke(
        main,
        ["stage", "difficultybank", "--spec", str(spec), "--run", f"qwen7b-pool={run}",
         "--out", str(tmp_path / "out")],
    )  # fmt: skip
    assert result.exit_code == VALIDATION_FAILED_EXIT_CODE, result.output
    assert "data/part-99999.jsonl: not listed in the manifest" in result.output
    assert not (tmp_path / "out").exists()
