"""`adacot verify math|code`: run a Result-Verifier over a JSONL file of responses.

Reads every row first (a malformed row stops the command before any verification, naming the file and
line), verifies in worker processes with a progress bar, and writes each row back with the verdict's
fields. The output file appears only when complete (written to a temporary name, then renamed).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from adacot.artifacts.rows import Verdict

Row = dict[str, Any]


def _io_options(func: Callable[..., None]) -> Callable[..., None]:
    func = click.option(
        "--workers",
        default=1,
        show_default=True,
        type=click.IntRange(1),
        help="Worker processes (math) or sandboxes run at once (code).",
    )(func)
    func = click.option(
        "--response-field", default="response", show_default=True, help="Field holding the model's response."
    )(func)
    func = click.option(
        "--output",
        "-o",
        "output_path",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="JSONL file to write.",
    )(func)
    func = click.option(
        "--input",
        "-i",
        "input_path",
        required=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="JSONL file with one response per line.",
    )(func)
    return func


@click.group()
def verify() -> None:
    """Check responses with the Result-Verifiers (math equivalence, sandboxed code tests)."""


@verify.command("math")
@_io_options
@click.option("--answer-field", default="answer", show_default=True, help="Field holding the reference.")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds allowed per verification.")
def verify_math(
    input_path: Path, output_path: Path, response_field: str, workers: int, answer_field: str, timeout: float
) -> None:
    """Verify final answers against references (symbolic equivalence via math-verify)."""
    from adacot.verify.math import MathVerifier

    fields = {response_field: ("response-field", _text), answer_field: ("answer-field", _reference)}
    rows, values = _read_rows(input_path, fields)
    with MathVerifier(workers=workers, timeout_s=timeout) as verifier:
        verdicts = verifier.verify_many((v[response_field], v[answer_field]) for v in values)
        _write_verdicts("math", rows, verdicts, output_path, extracted_field="extracted_answer")


@verify.command("code")
@_io_options
@click.option(
    "--tests-field",
    default="tests",
    show_default=True,
    help="Field holding the tests (function-call or stdin/stdout form; see README).",
)
@click.option("--timeout", default=60.0, show_default=True, help="Wall-clock seconds per sample.")
@click.option(
    "--memory",
    "memory_bytes",
    default="2Gi",
    show_default=True,
    callback=lambda _ctx, _param, value: _memory(value),
    help="Address-space limit per process, a Kubernetes quantity (as verification.codeMemory): 512Mi, 2Gi.",
)
def verify_code(
    input_path: Path,
    output_path: Path,
    response_field: str,
    workers: int,
    tests_field: str,
    timeout: float,
    memory_bytes: int,
) -> None:
    """Run extracted programs against their tests in the sandbox."""
    from adacot.verify.code import CodeVerifier
    from adacot.verify.sandbox import SandboxLimits

    fields = {response_field: ("response-field", _text), tests_field: ("tests-field", _tests)}
    rows, values = _read_rows(input_path, fields)
    limits = SandboxLimits(wall_seconds=timeout, memory_bytes=memory_bytes)
    with CodeVerifier(workers=workers, limits=limits) as verifier:
        click.echo(f"code sandbox mode: {verifier.sandbox.isolation.mode} (docs/security.md)", err=True)
        verdicts = verifier.verify_many((v[response_field], v[tests_field]) for v in values)
        _write_verdicts("code", rows, verdicts, output_path, extracted_field="program")


def _memory(value: str) -> int:
    """--memory in bytes; the same floor as the spec's codeMemory (64Mi)."""
    from adacot.api.quantity import quantity_bytes

    try:
        size = quantity_bytes(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    if size < 64 << 20:
        raise click.BadParameter(f"{value} is below 64Mi, too little for the Python interpreter")
    return size


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"should be a string, got {type(value).__name__}")
    return value


def _reference(value: Any) -> str:
    """References may be numbers in exported datasets (GSM8K-style); the verifier parses text."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"should be a string or a number, got {type(value).__name__}")
    return str(value)


def _tests(value: Any) -> dict[str, Any]:
    from adacot.artifacts.datasets import decode_tests

    return decode_tests(value)


FieldRule = tuple[str, Callable[[Any], Any]]


def _read_rows(path: Path, fields: Mapping[str, FieldRule]) -> tuple[list[Row], list[dict[str, Any]]]:
    """The rows of a JSONL file and, per row, the converted required fields (name -> (flag, convert)).

    Everything is checked before any verification starts, so a bad row costs nothing but the message.
    """
    from adacot.artifacts.datasets import iter_jsonl_rows

    rows: list[Row] = []
    values: list[dict[str, Any]] = []
    for raw in iter_jsonl_rows(path):
        if raw.error is not None or not isinstance(raw.value, dict):
            raise click.UsageError(f"{raw.where}: {raw.error or 'expected a JSON object per line'}")
        converted = {}
        for name, (flag, convert) in fields.items():
            if name not in raw.value:
                raise click.UsageError(f"{raw.where}: field '{name}' is missing (name another with --{flag})")
            try:
                converted[name] = convert(raw.value[name])
            except ValueError as error:
                raise click.UsageError(f"{raw.where}: field '{name}' {error}") from None
        rows.append(raw.value)
        values.append(converted)
    return rows, values


def _write_verdicts(
    kind: str, rows: list[Row], verdicts: Iterable[Verdict], output_path: Path, extracted_field: str
) -> None:
    """Stream verdicts into the output next to their rows; print a one-line summary."""
    reasons: Counter[str] = Counter()
    outcomes: Counter[bool | None] = Counter()
    output_path.parent.mkdir(parents=True, exist_ok=True)
    partial = output_path.with_name(output_path.name + ".partial")
    with partial.open("w", encoding="utf-8") as out:
        progress = tqdm(
            zip(rows, verdicts, strict=True), total=len(rows), desc=f"verify {kind}", unit="row", disable=None
        )
        for row, verdict in progress:
            reasons[verdict.reason] += 1
            outcomes[verdict.correct] += 1
            out.write(json.dumps(_annotated(row, verdict, extracted_field), ensure_ascii=False) + "\n")
    partial.replace(output_path)
    click.echo(_summary(kind, len(rows), outcomes, reasons, output_path))


def _annotated(row: Row, verdict: Verdict, extracted_field: str) -> Row:
    out = dict(row, correct=verdict.correct, reason=verdict.reason)
    out[extracted_field] = verdict.extracted
    if verdict.total is not None:
        out.update(passed=verdict.passed, total=verdict.total)
    if verdict.detail:
        out["detail"] = verdict.detail
    return out


def _summary(
    kind: str, total: int, outcomes: Counter[bool | None], reasons: Counter[str], output_path: Path
) -> str:
    undecided = outcomes[None]
    why = ", ".join(f"{reason}: {n}" for reason, n in sorted(reasons.items()))
    accuracy = outcomes[True] / total if total else 0.0
    return (
        f"verify {kind}: {total} rows — {outcomes[True]} correct ({accuracy:.1%}), "
        f"{outcomes[False]} wrong, {undecided} undecided [{why}] → {output_path}"
    )
