"""The demo's synthetic task: sums of numbers with 1 to 3 digits, whose answers the math verifier checks.

Callers: adacot.demo.pretrain (training texts), adacot.demo.pipeline (question files). Pure functions.

Why sums: the answer is checkable exactly, difficulty grows with the number of digits and carries, and
a model of 0.7M parameters learns part of it in minutes on a CPU, so the student solves
some questions and fails others. Three answer styles:

- partial results (the student): one line per partial result, right to left -- the last digit of the
  sum, then the last two, ... -- then the boxed answer (`2`, `32`, `\\boxed{132}`). Each line is a
  step a process reward model can score, and each is checkable (`step_labels`). The carries stay in
  the model's head, which makes it short and unreliable: the student gets some lines wrong.
- step by step (the teacher): R1-style `<think>` with one line per column, right to left, each with its
  carry, then the boxed answer. Every line is a one-digit sum, which a tiny model learns far more easily
  than a whole sum at once; this is what makes the teacher stronger than the student.
- direct: `\\boxed{132}`, the answer only (no steps; kept for tests of answer-only students).

Questions carry no instruction (the specs set `prompt.instruction: ""`): a tiny model has no use for
English, and every token it must attend over costs accuracy.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Sum:
    """One question: a + b."""

    a: int
    b: int

    @property
    def id(self) -> str:
        return f"{self.a}+{self.b}"

    @property
    def problem(self) -> str:
        return f"{self.a}+{self.b}"

    @property
    def answer(self) -> str:
        return str(self.a + self.b)

    @property
    def digits(self) -> int:
        return max(len(str(self.a)), len(str(self.b)))

    def row(self) -> dict[str, str | int]:
        """The question as a dataset row (the fields the demo's specs map)."""
        return {"id": self.id, "problem": self.problem, "answer": self.answer, "digits": self.digits}


def direct_answer(item: Sum) -> str:
    """The student's answer: the result alone."""
    return f"\\boxed{{{item.answer}}}"


def partial_results(item: Sum) -> list[str]:
    """The right steps of the student's style: the last 1, 2, ... digits of the sum, one per column
    (zero-padded: 105+3 gives 8, 08), then the boxed answer, which adds a final carry (47+85: 2, 32,
    \\boxed{132})."""
    total = item.answer
    lines = [total[-(i + 1) :].rjust(i + 1, "0") for i in range(item.digits)]
    return [*lines, f"\\boxed{{{total}}}"]


def partial_answer(item: Sum) -> str:
    """The student's answer: partial results, one per line, then the result."""
    return "\n".join(partial_results(item))


def step_labels(item: Sum, steps: list[str]) -> list[bool]:
    """Whether each step of a partial-results answer is right: line i is right when it equals the i-th
    partial result, a boxed line when it holds the answer. The automatic labels a PRM is trained on."""
    truth = partial_results(item)
    labels, line = [], 0
    for step in steps:
        if step.startswith("\\boxed"):
            labels.append(step == truth[-1])
            continue
        labels.append(line < len(truth) - 1 and step == truth[line])
        line += 1
    return labels


def step_answer(item: Sum) -> str:
    """The teacher's answer: column sums right to left with carries, then the result."""
    a, b = str(item.a)[::-1], str(item.b)[::-1]
    carry, lines = 0, []
    for i in range(max(len(a), len(b))):
        x, y = int(a[i]) if i < len(a) else 0, int(b[i]) if i < len(b) else 0
        total = x + y + carry
        lines.append(f"{x}+{y}+{carry}={total}")
        carry = total // 10
    return "<think>\n" + "\n".join(lines) + f"\n</think>\n\n\\boxed{{{item.answer}}}"


def random_sum(rng: random.Random, digits: int) -> Sum:
    """A sum whose larger operand has exactly `digits` digits (the other has 1..digits)."""
    low, high = (0 if digits == 1 else 10 ** (digits - 1)), 10**digits - 1
    other = rng.randint(1, digits)
    b = rng.randint(0 if other == 1 else 10 ** (other - 1), 10**other - 1)
    a = rng.randint(low, high)
    return Sum(a, b) if rng.random() < 0.5 else Sum(b, a)


def sums(count: int, seed: int, *, digit_weights: tuple[float, ...] = (1, 1, 1)) -> list[Sum]:
    """`count` distinct sums; the share with 1, 2, 3... digits follows `digit_weights`."""
    rng = random.Random(seed)
    found: dict[str, Sum] = {}
    sizes = range(1, len(digit_weights) + 1)
    while len(found) < count:
        item = random_sum(rng, rng.choices(sizes, weights=digit_weights)[0])
        found.setdefault(item.id, item)
    return list(found.values())


def stream(seed: int, *, digit_weights: tuple[float, ...] = (1, 1, 1)) -> Iterator[Sum]:
    """An endless stream of training sums (repeats allowed)."""
    rng = random.Random(seed)
    sizes = range(1, len(digit_weights) + 1)
    while True:
        yield random_sum(rng, rng.choices(sizes, weights=digit_weights)[0])
