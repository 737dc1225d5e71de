"""Pure parts of the code verifier: program extraction, test specs, the value encoding, comparison."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from adacot.verify.code import _HARNESS_SOURCE, extract_program
from adacot.verify.code_tests import (
    BadTests,
    CallTests,
    StdioTests,
    as_json_shape,
    mbppplus_tests,
    outputs_match,
    parse_tests,
    stdout_matches,
)
from adacot.verify.harness import Opaque, decode, encode

FENCE = "```"


@pytest.mark.parametrize(
    ("response", "program"),
    [
        (f"Here:\n{FENCE}python\ndef f(): return 1\n{FENCE}\n", "def f(): return 1\n"),
        (f"{FENCE}py\na = 1\n{FENCE} then {FENCE}python\nb = 2\n{FENCE}", "b = 2\n"),
        (f"{FENCE}\nx = 3\n{FENCE}", "x = 3\n"),
        (f"{FENCE}python3\ny = 4\n{FENCE}", "y = 4\n"),
        (f"{FENCE}python\nz = 1\n{FENCE}\n{FENCE}text\nnot code\n{FENCE}", "z = 1\n"),
        ("def g():\n    return 2\n", "def g():\n    return 2\n"),
        (
            f"<think>{FENCE}python\nwrong = 1\n{FENCE}</think>final:\n{FENCE}python\nright = 1\n{FENCE}",
            "right = 1\n",
        ),
        (f"<think>{FENCE}python\nwrong = 1\n{FENCE}</think>\nplain = 2", "\nplain = 2"),
    ],
)
def test_extract_program(response: str, program: str) -> None:
    assert extract_program(response) == program


@pytest.mark.parametrize("response", ["", "   \n", f"<think>{FENCE}python\nx=1\n{FENCE}</think>  "])
def test_extract_program_none_when_empty(response: str) -> None:
    assert extract_program(response) is None


def test_parse_tests_forms() -> None:
    call = parse_tests({"entry_point": "f", "inputs": [[1, 2]], "outputs": [3], "atol": 0})
    assert isinstance(call, CallTests) and call.outputs == [3]
    stdio = parse_tests({"stdio": [{"input": "1\n", "output": "2"}]})
    assert isinstance(stdio, StdioTests) and stdio.stdio[0].output == "2"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"entry_point": "f", "inputs": [[1]]}, "canonical_solution"),
        ({"entry_point": "f", "inputs": [[1], [2]], "outputs": [1]}, "1 entries but `inputs` has 2"),
        ({"entry_point": "f", "inputs": [[1]], "outputs": [1], "tolerance": 1}, "tolerance"),
        ({"entry_point": "", "inputs": [[1]], "outputs": [1]}, "entry_point"),
        ({"entry_point": "f", "inputs": [[1]], "outputs": [1], "atol": -1}, "atol"),
        ({"stdio": []}, "stdio"),
        ({"stdio": [{"input": "1"}]}, "stdio.0.output"),
        ([1, 2], "must be an object"),
    ],
)
def test_parse_tests_rejects_with_field(raw: object, message: str) -> None:
    with pytest.raises(BadTests, match=message.replace("`", ".")):
        parse_tests(raw)


VALUES = [
    None,
    True,
    0,
    -7,
    10**5000,
    1.5,
    math.inf,
    "text\u2603",
    [1, [2]],
    (1, (2, "a")),
    {1, 2},
    frozenset({(1, 2)}),
    {"a": [1], (1, 2): {3}},
    2 + 3j,
    b"\x00\xff",
    [],
    (),
    {},
]


@pytest.mark.parametrize("value", VALUES, ids=[type(v).__name__ + str(i) for i, v in enumerate(VALUES)])
def test_encoding_round_trip_keeps_types(value: object) -> None:
    back = decode(encode(value))
    assert back == value and type(back) is type(value)


def test_encoding_reduces_subclasses_and_hides_custom_eq() -> None:
    class Liar(int):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = int.__hash__

    back = decode(encode(Liar(5)))
    assert type(back) is int and back == 5 and back != 6
    opaque = decode(encode(object()))
    assert isinstance(opaque, Opaque) and opaque.type_name == "object"


def test_encoding_fast_paths_keep_subclass_rule() -> None:
    # encode() takes exact list/tuple/int first; their subclasses still reduce to the base type.
    from collections import namedtuple

    class Items(list):  # type: ignore[type-arg]
        pass

    pair = namedtuple("pair", "a b")
    assert decode(encode([pair(1, 2), Items([3])])) == [(1, 2), [3]]
    assert [type(item) for item in decode(encode([pair(1, 2), Items([3])]))] == [tuple, list]
    assert encode(-(10**1000)) == {"#i": hex(-(10**1000))} and encode(10**1000 - 1) == 10**1000 - 1
    assert encode([True, 1.0, None, "s"]) == {"#l": [True, 1.0, None, "s"]}


class _Text(str):
    pass


FLAT = [
    [1, 2, 3],
    [True, 1, 0, False],  # bools stay bools beside ints
    [1, 10**1000, 2],  # one big int: the whole list takes the per-item path
    ["a", 10**1000, None],
    (1.5, -2, "x", None),
    [_Text("sub"), "plain"],  # a str subclass is reduced, not passed through
    [[1, 2], (3, 4), []],
]


@pytest.mark.parametrize("value", FLAT, ids=[str(i) for i in range(len(FLAT))])
def test_flat_containers_round_trip_through_json_like_the_per_item_path(value: object) -> None:
    # Lists of exact scalars are encoded and decoded in one C-level pass; the result must be what the
    # per-item path gives: the same values, the same exact types, the same JSON.
    wire = json.loads(json.dumps(encode(value)))
    back = decode(wire)
    assert back == value and type(back) is type(value)
    assert [type(item) for item in back] == [  # type: ignore[attr-defined]
        str if isinstance(item, str) else type(item)
        for item in value  # type: ignore[attr-defined]
    ]
    assert as_json_shape(back) == json.loads(json.dumps(back))


def test_flat_fast_path_keeps_big_ints_tagged() -> None:
    assert encode([1, 10**1000]) == {"#l": [1, {"#i": hex(10**1000)}]}
    assert encode((-(10**1000), "s")) == {"#t": [{"#i": hex(-(10**1000))}, "s"]}
    assert encode([10**1000 - 1, 2]) == {"#l": [10**1000 - 1, 2]}


@pytest.mark.parametrize("bad", [[1, 2], {"#zz": 1}, {"#l": 1, "#t": 2}, {"#d": [[[1], 2]]}, {"#i": "xyz"}])
def test_decode_rejects_malformed(bad: object) -> None:
    with pytest.raises(ValueError):
        decode(bad)


def test_the_sandbox_script_runs_without_adacot(tmp_path: Path) -> None:
    """harness.py + harness_main.py, as code.py joins them, define the runner under an interpreter that
    cannot import adacot (no site-packages, no script directory), as in the sandbox."""
    loader = "import sys; ns = {'__name__': 'probe'}; exec(sys.stdin.read(), ns); print(callable(ns['main']))"
    done = subprocess.run(
        [sys.executable, "-s", "-S", "-B", "-P", "-c", loader],
        input=_HARNESS_SOURCE,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "True"), done.stderr


@pytest.mark.parametrize(
    ("expected", "actual", "atol", "oracle", "same"),
    [
        (3, 3, 0, "exact", True),
        (3, 4, 0, "exact", False),
        (1, True, 0, "exact", True),  # Python equality, as EvalPlus uses
        (0.3, 0.1 + 0.2, 0, "exact", True),  # floats get atol 1e-6
        (0.3, 0.3001, 0, "exact", False),
        ([0.5, 1.5], [0.5000001, 1.4999999], 0, "exact", True),
        ([0.5, 1.5], (0.5, 1.5), 0, "exact", False),  # type must match
        ([0.5, 1.5], [0.5], 0, "exact", False),
        (1.0, 1.00005, 1e-4, "exact", True),
        (1.0, 1.0002, 1e-4, "exact", False),
        (math.nan, math.nan, 0, "exact", False),
        ([1, 2], [1, 2.0000001], 0, "exact", False),  # not all floats: no tolerance
        ("a", "a ", 0, "exact", False),
        ((1, 2, 3), (3, 2, 1), 0, "set", True),
        ((1, 2, 3), (3, 2), 0, "set", False),
        (Opaque("Match", "<re.Match ...>"), "anything", 0, "not_none", True),
        (None, None, 0, "not_none", True),
        (None, "x", 0, "not_none", False),
    ],
)
def test_outputs_match_follows_evalplus(
    expected: object, actual: object, atol: float, oracle: str, same: bool
) -> None:
    assert outputs_match(expected, actual, atol, oracle) is same


@pytest.mark.parametrize(
    ("expected", "actual", "same"),
    [
        ("3", "3\n", True),
        ("1 2\n3", "1 2 3  \n\n", True),
        ("1 2\r\n", "1 2\n", True),
        ("12", "1 2", False),
        ("1 2", "2 1", False),
        ("", "\n", True),
    ],
)
def test_stdout_matches_token_wise(expected: str, actual: str, same: bool) -> None:
    assert stdout_matches(expected, actual) is same


def test_mbppplus_row_conversion() -> None:
    row = {
        "task_id": "Mbpp/106",
        "entry_point": "add_lists",
        "canonical_solution": "def add_lists(a, b): 0",
        "base_input": [[[1, 2], [3]]],
        "plus_input": [[[4], [5, 6]]],
        "atol": 0,
    }
    tests = mbppplus_tests(row)
    assert tests.inputs == [[[1, 2], (3,)], [[4], (5, 6)]]  # EvalPlus restores the tuple argument
    assert tests.outputs is None and tests.canonical_solution and tests.oracle == "exact"
    assert len(mbppplus_tests(row, plus=False).inputs) == 1
    assert mbppplus_tests({**row, "task_id": "Mbpp/2", "entry_point": "similar_elements"}).oracle == "set"
    with pytest.raises(BadTests, match="Mbpp/9 lacks canonical_solution"):
        mbppplus_tests({"task_id": "Mbpp/9", "entry_point": "f", "base_input": []})
