"""`adacot verify math|code` on the bundled examples, through the real command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from adacot.cli.main import main
from adacot.demo import example_path
from adacot.verify.sandbox import probe_isolation

pytestmark = pytest.mark.integration


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_verify_math_matches_the_hand_labels(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        main,
        ["verify", "math", "-i", str(example_path("math_responses.jsonl")), "-o", str(out), "--workers", "2"],
    )
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert [r["correct"] for r in rows] == [r["expected"] for r in rows]
    assert rows[0]["extracted_answer"] == "\\dfrac{7}{8}"
    assert "12 rows" in result.output and "3 wrong" in result.output


def test_verify_code_through_the_console_script(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    script = Path(sys.executable).with_name("adacot")
    src = example_path("code_responses.jsonl")
    done = subprocess.run(
        [str(script), "verify", "code", "-i", str(src), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"code sandbox mode: {probe_isolation().mode} " in done.stderr  # said on stderr
    rows = _rows(out)
    assert [r["correct"] for r in rows] == [r["expected"] for r in rows]
    by_id = {r["id"]: r for r in rows}
    assert by_id["digits-infinite-loop"]["reason"] == "timeout"
    assert by_id["digits-correct"]["passed"] == by_id["digits-correct"]["total"] == 5
    assert by_id["digits-off-by-one"]["program"].startswith("def add_digits")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"response": "x"}', "field 'answer' is missing"),
        ('{"response": 3, "answer": "3"}', "field 'response' should be a string"),
        ("not json", "not valid JSON"),
    ],
)
def test_a_malformed_row_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"response": "\\\\boxed{1}", "answer": "1"}\n' + line + "\n")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(main, ["verify", "math", "-i", str(src), "-o", str(out)])
    assert result.exit_code == 2
    assert f"{src}:2: " in result.output and message in result.output
    assert not out.exists()


def test_tests_given_as_a_json_string_are_accepted(tmp_path: Path) -> None:
    tests = {"entry_point": "f", "inputs": [[1], [2]], "outputs": [2, 4]}
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"response": "def f(x):\n    return 2 * x\n", "tests": json.dumps(tests)}) + "\n"
    )
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(main, ["verify", "code", "-i", str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert _rows(out)[0]["correct"] is True


@pytest.mark.parametrize(
    ("memory", "message"),
    [("2GB", "is not a Kubernetes quantity"), ("32Mi", "below 64Mi")],
)
def test_code_memory_is_a_quantity_with_the_specs_floor(tmp_path: Path, memory: str, message: str) -> None:
    src = example_path("code_responses.jsonl")
    args = ["verify", "code", "-i", str(src), "-o", str(tmp_path / "o.jsonl"), "--memory", memory]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_a_memory_quantity_limits_the_program(tmp_path: Path) -> None:
    """A program that allocates 300 MiB fails under --memory 128Mi and passes under 1Gi."""
    program = "def f(x):\n    block = bytearray(300 << 20)\n    return 2 * x + len(block) * 0\n"
    tests = {"entry_point": "f", "inputs": [[1]], "outputs": [2]}
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"response": program, "tests": tests}) + "\n")
    verdicts = {}
    for memory in ("128Mi", "1Gi"):
        out = tmp_path / f"{memory}.jsonl"
        result = CliRunner().invoke(
            main, ["verify", "code", "-i", str(src), "-o", str(out), "--memory", memory]
        )
        assert result.exit_code == 0, result.output
        verdicts[memory] = _rows(out)[0]["correct"]
    assert verdicts == {"128Mi": False, "1Gi": True}
