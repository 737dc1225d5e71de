"""The code chain's synthetic task: small integer functions built from 1 to 4 named operations, with tests.

Callers: adacot.demo.code_chain (question files, training the two models) and tests. Pure functions.

A question lists operations applied in order to the argument, e.g. `f(x): add 3, times 2, absolute value`;
its tests call `f` on five integers (function-call form of adacot.verify.code_tests, expected outputs
computed here). Difficulty grows with the number of operations. Two answer styles:

- the student's: one fenced function returning a single nested expression, `return abs((x + 3) * 2)`.
  Writing it means emitting the outer operations first and placing parentheses by precedence, which a
  tiny model trained briefly gets right for one operation and increasingly wrong for more;
- the teacher's (R1 style): `<think>` with one line per operation, then a fenced function with one
  statement per operation (`x = x + 3`), each a direct translation of one phrase: easy to learn.

Operations such as `absolute value`, `at least k` or `mod k` agree with a wrong program on some inputs,
so wrong answers pass some of the five tests and not others: the test-pass share spreads the unsolved
questions over levels 1..5.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from adacot.demo.pretrain import TrainingTask, chat_texts

ENTRY_POINT = "f"
TESTS_PER_QUESTION = 5
INPUTS = range(-9, 10)
MAX_OPS = 4

_ADD, _MUL, _UNARY, _POW, _ATOM = 1, 2, 3, 4, 5  # Python precedence of an expression's outer operator
_PRECEDENCE = {"+": _ADD, "-": _ADD, "*": _MUL, "//": _MUL, "%": _MUL, "**": _POW}


@dataclass(frozen=True)
class Op:
    """One named operation: its phrase, how it acts on a value, and its Python spelling.

    Spelled `value <binary> constant` when `binary` is set, `call(value<args>)` when `call` is, else
    unary minus. Constants are part of the operation (no digits to copy from the question): what a
    model must learn is the phrase-to-code mapping and, for the single expression, the nesting.
    """

    phrase: str
    apply: Callable[[int], int]
    binary: str | None = None
    constant: int = 0
    call: str | None = None
    args: str = ""


OPS = {
    "inc": Op("add one", lambda v: v + 1, binary="+", constant=1),
    "dec": Op("subtract one", lambda v: v - 1, binary="-", constant=1),
    "double": Op("double", lambda v: v * 2, binary="*", constant=2),
    "triple": Op("triple", lambda v: v * 3, binary="*", constant=3),
    "halve": Op("halve", lambda v: v // 2, binary="//", constant=2),
    "mod3": Op("mod three", lambda v: v % 3, binary="%", constant=3),
    "square": Op("square", lambda v: v**2, binary="**", constant=2),
    "neg": Op("negate", lambda v: -v),
    "abs": Op("absolute value", abs, call="abs"),
    "pos": Op("at least zero", lambda v: max(v, 0), call="max", args=", 0"),
    "nonpos": Op("at most zero", lambda v: min(v, 0), call="min", args=", 0"),
}


@dataclass(frozen=True)
class Func:
    """One question: operations (names in OPS) applied in order to x, and the test inputs."""

    steps: tuple[str, ...]
    inputs: tuple[int, ...]

    @property
    def id(self) -> str:
        return "-".join(self.steps)

    @property
    def problem(self) -> str:
        return f"{ENTRY_POINT}(x): " + ", ".join(OPS[name].phrase for name in self.steps)

    @property
    def ops(self) -> int:
        return len(self.steps)

    def __call__(self, x: int) -> int:
        for name in self.steps:
            x = OPS[name].apply(x)
        return x

    def tests(self) -> dict[str, object]:
        """Function-call tests with their expected outputs (adacot.verify.code_tests)."""
        return {
            "entry_point": ENTRY_POINT,
            "inputs": [[x] for x in self.inputs],
            "outputs": [self(x) for x in self.inputs],
        }

    def row(self) -> dict[str, object]:
        """The question as a dataset row (fields id, problem, tests; ops for reading results)."""
        return {"id": self.id, "problem": self.problem, "tests": self.tests(), "ops": self.ops}


def _spell(op: Op, value: str, precedence: int) -> tuple[str, int]:
    """`op` applied to an expression `value` of outer `precedence`, with parentheses only where needed."""
    if op.call is not None:
        return f"{op.call}({value}{op.args})", _ATOM
    if op.binary is None:  # negate: binds tighter than * but looser than **
        return "-" + (value if precedence >= _UNARY else f"({value})"), _UNARY
    mine = _PRECEDENCE[op.binary]
    needed = mine + 1 if op.binary == "**" else mine  # ** is right-associative: (x ** 2) ** 2
    left = value if precedence >= needed else f"({value})"
    return f"{left} {op.binary} {op.constant}", mine


def expression(item: Func) -> str:
    """The whole function as one Python expression in x."""
    text, precedence = "x", _ATOM
    for name in item.steps:
        text, precedence = _spell(OPS[name], text, precedence)
    return text


def _statement(name: str) -> str:
    return _spell(OPS[name], "x", _ATOM)[0]


def direct_answer(item: Func) -> str:
    """The student's answer: the function as one fenced block returning one expression."""
    return f"```python\ndef {ENTRY_POINT}(x):\n    return {expression(item)}\n```"


def step_answer(item: Func) -> str:
    """The teacher's answer: each operation on its own line in `<think>`, then a statement per operation."""
    think = "\n".join(f"{OPS[name].phrase}: {_statement(name)}" for name in item.steps)
    body = "".join(f"    x = {_statement(name)}\n" for name in item.steps)
    code = f"```python\ndef {ENTRY_POINT}(x):\n{body}    return x\n```"
    return f"<think>\n{think}\n</think>\n\n{code}"


def random_func(rng: random.Random, ops: int) -> Func:
    """A function of exactly `ops` operations (no operation twice in a row) and distinct test inputs."""
    steps: list[str] = []
    while len(steps) < ops:
        name = rng.choice(sorted(OPS))
        if not steps or steps[-1] != name:
            steps.append(name)
    return Func(tuple(steps), tuple(rng.sample(list(INPUTS), TESTS_PER_QUESTION)))


def _sizes(weights: tuple[float, ...]) -> range:
    if not 0 < len(weights) <= MAX_OPS or any(w < 0 for w in weights) or not any(weights):
        raise ValueError(f"op weights need 1 to {MAX_OPS} non-negative entries, not all 0; got {weights}")
    return range(1, len(weights) + 1)


def funcs(count: int, seed: int, *, op_weights: tuple[float, ...] = (1, 1, 1, 1)) -> list[Func]:
    """`count` functions with distinct ids; the share with 1, 2, 3, 4 operations follows `op_weights`."""
    rng, sizes = random.Random(seed), _sizes(op_weights)
    found: dict[str, Func] = {}
    while len(found) < count:
        item = random_func(rng, rng.choices(sizes, weights=op_weights)[0])
        found.setdefault(item.id, item)
    return list(found.values())


def stream(seed: int, *, op_weights: tuple[float, ...] = (1, 1, 1, 1)) -> Iterator[Func]:
    """An endless stream of training functions (repeats allowed)."""
    rng, sizes = random.Random(seed), _sizes(op_weights)
    while True:
        yield random_func(rng, rng.choices(sizes, weights=op_weights)[0])


def corpus(seed: int = 0, count: int = 1000) -> list[str]:
    """Texts for the shared tokenizer: both answer styles, so their words and tags become tokens."""
    return chat_texts(funcs(count, seed), lambda f: f.problem, (direct_answer, step_answer))


def training_task(style: str, op_weights: tuple[float, ...] = (1, 1, 1, 1)) -> TrainingTask:
    """The task adacot.demo.pretrain.train trains on: `student` (direct) or `teacher` (step) answers."""
    answers = {"student": direct_answer, "teacher": step_answer}
    if style not in answers:
        raise ValueError(f"style must be student or teacher, not {style!r}")
    return TrainingTask(
        name=f"code-{style}",
        stream=lambda seed: stream(seed, op_weights=op_weights),
        problem=lambda f: f.problem,
        answer=answers[style],
        corpus=corpus,
        vocab_size=384,
        extra={"op_weights": list(op_weights)},
    )
