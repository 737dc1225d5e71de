"""Find the final answer in a model response, and the reference answer in a gold string.

Called by `adacot.verify.math` (the math Result-Verifier); pure string work, no sympy, so it is cheap
and cannot hang. The returned span is what the CLI writes as `extracted_answer` and what math-verify
then parses (after `answer_latex.as_latex`).

Why not math-verify's own extraction alone: its anchored patterns ("final answer is", "answer:") are
built around a number or a `$...$` environment, so "The answer is (2, 3)." yields `3`; its boxed regex
needs braces (no `\\boxed 5`, no `\\fbox`); it knows neither GSM8K's `#### n` nor the reasoning
markers of long-CoT models, so it reads drafts from the thoughts. We find the answer *span* here and
hand it to math-verify's LaTeX parser, whose normalisation (`\\text{}`, units, `\\left`/`\\right`,
`\\dfrac`, degrees, nested `\\boxed`) does the rest.

Only the text after the reasoning is searched (`answer_scope`: `</think>`, Sky-T1's
`<|begin_of_solution|>`, or the whole plain text); a trace cut off inside its reasoning has no answer
(`why_no_answer` says so). In that text, in order of precedence:
  1. the last `\\boxed{...}` / `\\fbox{...}` (nested braces) or `\\boxed x` - when the last box is
     empty there is no answer, never an earlier draft or a number;
  2. the last GSM8K `#### n`;
  3. the last "The (final) answer is ..." / "Final answer: ..." phrase;
  4. the final statement read whole: the last math environment that ends the text (`$P = \\frac18$.`),
     else what follows the last `=` / "equals" of the last sentence (method `final_statement`);
  5. only when none of these exists: the last number in the text (method `last_number`).
Limits: a phrase answer runs to the end of its sentence or line, so a multi-line answer after
"Answer:" is cut.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from adacot.verify.answer_latex import as_latex
from adacot.verify.answer_scope import read_scope

__all__ = [
    "Extraction",
    "answer_scope",
    "as_latex",
    "extract_answer",
    "gold_answer",
    "last_boxed",
    "why_no_answer",
]

Method = Literal["boxed", "gsm8k", "answer_phrase", "final_statement", "last_number"]

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_GSM8K_RE = re.compile(r"####\s*([^\n]+)")
# "The answer is", "the final answer is:", "Final Answer: ", "**Answer:**", "answer = ".
_PHRASE_RE = re.compile(
    r"(?i)(?:final\s+answer|\banswer)(?:\s+to\s+[^.:\n]{0,60}?)?\s*(?:\*\*)?\s*(?:is\s*:?|:|=|(?<=\*\*)(?=\s*\n))\s*(?:\*\*)?\s*"
    r"(?:that\s+)?(?P<rest>.{0,500})",
    re.DOTALL,
)
_ANSWER_WORD_RE = re.compile(r"(?i)final\s+answer|\banswer")
_MATH_ENV_RE = re.compile(r"^(?:\$\$(.+?)\$\$|\$(.+?)(?<!\\)\$|\\\((.+?)\\\)|\\\[(.+?)\\\])", re.DOTALL)
# A sentence ends at a full stop followed by white space or the end: "3.5." ends after the 5.
_SENTENCE_END_RE = re.compile(r"\.(?=\s|$)")
_NUMBER_RE = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+")
# Math environments in text; `$...$` does not cross a blank line, so a stray `$` cannot swallow a page.
_ENV_RE = re.compile(
    r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|(?<![\\$])\$((?:(?!\n\s*\n)[^$])+?)(?<!\\)\$", re.DOTALL
)
# What may follow the final statement: punctuation, markdown emphasis, a closing bracket, blank space.
_TAIL_RE = re.compile(r"^[\s.,;:!*_)\]]*$")
_EQUALS_RE = re.compile(r"=|\bequals\b|\bequal to\b|\bis\b(?=\s*\\)")
# Two plain words (3+ letters, not LaTeX commands) mean prose, not an expression: "7 and then doubled".
_WORDS_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}\b.*(?<![\\A-Za-z])[A-Za-z]{3,}\b", re.DOTALL)
_BLANK_BOX_RE = re.compile(r"^(?:\s|~|\\[,;:! ]|\\q?quad)*$")


@dataclass(frozen=True)
class Extraction:
    """An answer span found in a text and how it was found."""

    text: str
    method: Method


def answer_scope(response: str) -> str | None:
    """The part of a response that may hold the final answer; None when there is none (see `read_scope`)."""
    return read_scope(response).text


def _braced(text: str, start: int) -> str | None:
    """The content of the brace group opening at text[start] ('{'), or None if it never closes."""
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2  # `\{` and `\}` are literal braces in LaTeX, not grouping
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
        i += 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last complete `\\boxed{...}`, `\\fbox{...}` or `\\boxed x` in text."""
    for match in reversed(list(_BOX_RE.finditer(text))):
        i = match.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "{":
            content = _braced(text, i)
            if content is not None and content.strip():
                return content.strip()
        elif i > match.end():
            # `\boxed 5`: TeX takes the next token; we take the next run of non-space characters.
            token = re.match(r"[^\s$]+", text[i:])
            if token:
                return token.group(0).rstrip(".,;")
    return None


def _gsm8k(text: str) -> str | None:
    matches = _GSM8K_RE.findall(text)
    return matches[-1].strip() if matches else None


def _phrase(text: str) -> str | None:
    """The answer stated in the last "the answer is ..." phrase, trimmed to its sentence."""
    # Match at every keyword, not finditer's non-overlapping matches: in "Final Answer: The final
    # answer is $x$." the first match would swallow the second, which holds the cleaner span.
    for keyword in reversed(list(_ANSWER_WORD_RE.finditer(text))):
        match = _PHRASE_RE.match(text, keyword.start())
        span = _trim_span(match.group("rest")) if match else ""
        if span:
            return span
    return None


def _trim_span(rest: str) -> str:
    rest = rest.strip().removeprefix("**").strip()
    env = _MATH_ENV_RE.match(rest)
    if env:
        return next(g for g in env.groups() if g is not None).strip()
    line = rest.split("\n", 1)[0]
    end = _SENTENCE_END_RE.search(line)
    span = line[: end.start()] if end else line
    return span.replace("**", "").strip().rstrip(",;:").strip()


def _final_box_is_empty(text: str) -> bool:
    """Whether the last complete box in text is `\\boxed{}` (or holds only spacing)."""
    for match in reversed(list(_BOX_RE.finditer(text))):
        i = match.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        content = _braced(text, i) if i < len(text) and text[i] == "{" else None
        if content is not None:
            return bool(_BLANK_BOX_RE.match(content))
    return False


def _final_statement(text: str) -> str | None:
    """The statement that ends the text, read whole rather than as its last number.

    The last math environment when nothing but punctuation follows it (`... is $P = \\frac{1}{8}$.`);
    else what follows the last `=` / "equals" in the last line, when that is an expression and not
    prose ("7 and then doubled to get 14" is prose: the last-number fallback takes it).
    """
    envs = list(_ENV_RE.finditer(text))
    if envs and _TAIL_RE.match(text[envs[-1].end() :]):
        content = next(g for g in envs[-1].groups() if g is not None).strip()
        if content:
            return content
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    marks = list(_EQUALS_RE.finditer(lines[-1]))
    if not marks:
        return None
    rest = lines[-1][marks[-1].end() :].strip().rstrip(".,;:!*").strip()
    if not rest or not re.search(r"[\d\\]", rest) or _WORDS_RE.search(rest):
        return None
    return rest


def _last_number(text: str) -> str | None:
    matches = _NUMBER_RE.findall(text)
    return matches[-1].replace(",", "").replace(" ", "") if matches else None


_FINDERS: tuple[tuple[Method, Callable[[str], str | None]], ...] = (
    ("boxed", last_boxed),
    ("gsm8k", _gsm8k),
    ("answer_phrase", _phrase),
    ("final_statement", _final_statement),
)


def extract_answer(response: str) -> Extraction | None:
    """The final answer span of a model response, or None when it states none (`why_no_answer`)."""
    scope = answer_scope(response)
    if scope is None or _final_box_is_empty(scope):
        return None
    for method, finder in _FINDERS:
        span = finder(scope)
        if span:
            return Extraction(span, method)
    number = _last_number(scope)
    return Extraction(number, "last_number") if number else None


def why_no_answer(response: str) -> str:
    """Why `extract_answer` found nothing in this response, in words for a Verdict's detail."""
    scope = read_scope(response)
    if scope.text is None:
        return scope.why
    if _final_box_is_empty(scope.text):
        return "no final answer: the final \\boxed{} is empty"
    return "no final answer: no box, answer phrase, final statement or number after the reasoning"


def gold_answer(gold: str) -> str:
    """The reference answer inside a gold string.

    A GSM8K reference is a worked solution ending in `#### 72` (thousands may be written `1,000`);
    a MATH-style full solution holds the answer in its last `\\boxed{}`; anything else is the answer.
    """
    if "####" in gold:
        tail = gold.rsplit("####", 1)[1].strip()
        return tail.replace(",", "") if re.fullmatch(r"-?[\d,]+(?:\.\d+)?", tail) else tail
    return last_boxed(gold) or gold.strip()
