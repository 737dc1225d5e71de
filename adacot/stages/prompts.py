"""Questions to prompts: the per-task answer-format instruction, the optional system message, chat vs text.

Callers: the grading stage (adacot.stages.grade) and, later, distillation. The rule is the one in
`PromptSpec`: the instruction (the spec's, or the task default below) is appended to the question unless
the question already ends with it (MATH-500 rows already carry "Please reason step by step, ..."; a second
copy would change what the model is asked). With `useChatTemplate` the prompt is a chat turn list that the
backend renders with the model's template; without it the prompt is plain text, the system message (if
any) and the user text separated by a blank line, sent as is.

Limits: no few-shot examples, no per-source instructions.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from adacot.api.common import TaskType
from adacot.api.generation import PromptSpec
from adacot.artifacts.rows import Question
from adacot.backends.base import Prompt

#: Default instructions per task: the answer formats the verifiers read best.
DEFAULT_INSTRUCTIONS: dict[TaskType, str] = {
    TaskType.math: "Please reason step by step, and put your final answer within \\boxed{}.",
    TaskType.code: "Write a Python solution and answer with one fenced ```python code block.",
}


def instruction_for(task: TaskType, spec: PromptSpec) -> str:
    """The instruction appended to a question: the spec's when set, else the task default."""
    return spec.instruction if spec.instruction is not None else DEFAULT_INSTRUCTIONS[task]


def user_text(question: Question, spec: PromptSpec) -> str:
    """The question followed by the instruction (not repeated when the question already ends with it)."""
    instruction = instruction_for(question.task, spec).strip()
    problem = question.problem.rstrip()
    if not instruction or problem.endswith(instruction):
        return problem
    return f"{problem}\n{instruction}"


def build_prompt(question: Question, spec: PromptSpec, seed: int | None = None) -> Prompt:
    """One Prompt for a question (chat turns or plain text, as the spec says)."""
    return prompt_for_text(user_text(question, spec), spec, seed)


def prompt_for_text(text: str, spec: PromptSpec, seed: int | None = None) -> Prompt:
    """The request for a user text: chat turns, or plain text when the chat template is off."""
    if spec.use_chat_template:
        return replace(Prompt.chat(text, system=spec.system), seed=seed)
    return Prompt(text=f"{spec.system}\n\n{text}" if spec.system else text, seed=seed)


def derive_seed(base: int, question_id: str, round_number: int = 0) -> int:
    """A per-question (and per-round) sampling seed: the same in every shard and on every restart,
    and different between questions, so k samples of two questions are not drawn alike."""
    digest = hashlib.sha256(f"{base}\x00{question_id}\x00{round_number}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
