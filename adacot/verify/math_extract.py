"""Find the final answer in a model response, and the reference answer in a gold string.

Called by `adacot.verify.math` (the math Result-Verifier); pure string work, no sympy, so it is cheap
and cannot hang. The returned span is what the CLI writes as `extracted_answer` and what math-verify
then parses.

Why not math-verify's own extraction alone: its anchored patterns ("final answer is", "answer:") are
built around a number or a `$...$` environment, so "The answer is (2, 3)." yields `3`; its boxed regex
needs braces (no `\\boxed 5`, no `\\fbox`); it knows neither GSM8K's `#### n` nor R1's `</think>`. We
find the answer *span* here and hand it to math-verify's LaTeX parser, whose normalisation (`\\text{}`,
units, `\\left`/`\\right`, `\\dfrac`, degrees, nested `\\boxed`) does the rest.

Order of precedence, searched only after the last `</think>` when the response has one:
  1. the last `\\boxed{...}` / `\\fbox{...}` (nested braces) or `\\boxed x`;
  2. the last GSM8K `#### n`;
  3. the last "The (final) answer is ..." / "Final answer: ..." phrase;
  4. only when none of these exists: the last number in the text (method `last_number`).
Limits: a response with `<think>` but no `</think>` was cut off mid-thought and has no answer; a
phrase answer runs to the end of its sentence or line, so a multi-line answer after "Answer:" is cut.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Method = Literal["boxed", "gsm8k", "answer_phrase", "last_number"]

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
_UNESCAPED_DOLLAR_RE = re.compile(r"(?<!\\)\$")
# A number (maybe `\$`-prefixed, with `,`/`{,}`/`,\!` separators) then plain words of 2+ letters.
_NUMBER_THEN_WORDS_RE = re.compile(r"^(?P<number>(?:\\\$)?-?[\d.,{}\\!]*\d)\s+(?:[A-Za-z]{2,}\s*)+$")


@dataclass(frozen=True)
class Extraction:
    """An answer span found in a text and how it was found."""

    text: str
    method: Method


def answer_scope(response: str) -> str | None:
    """The part of a response that may hold the final answer; None when the thinking never ended.

    R1-style models think inside `<think>...</think>` and answer after it; an answer-like line inside
    the thoughts is a draft, so only the text after the last `</think>` counts.
    """
    if "</think>" in response:
        return response.rsplit("</think>", 1)[1]
    if "<think>" in response:
        return None
    return response


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


def _last_number(text: str) -> str | None:
    matches = _NUMBER_RE.findall(text)
    return matches[-1].replace(",", "").replace(" ", "") if matches else None


_FINDERS: tuple[tuple[Method, Callable[[str], str | None]], ...] = (
    ("boxed", last_boxed),
    ("gsm8k", _gsm8k),
    ("answer_phrase", _phrase),
)


def extract_answer(response: str) -> Extraction | None:
    """The final answer span of a model response, or None when it states none."""
    scope = answer_scope(response)
    if scope is None:
        return None
    for method, finder in _FINDERS:
        span = finder(scope)
        if span:
            return Extraction(span, method)
    number = _last_number(scope)
    return Extraction(number, "last_number") if number else None


def gold_answer(gold: str) -> str:
    """The reference answer inside a gold string.

    A GSM8K reference is a worked solution ending in `#### 72` (thousands may be written `1,000`);
    a MATH-style full solution holds the answer in its last `\\boxed{}`; anything else is the answer.
    """
    if "####" in gold:
        tail = gold.rsplit("####", 1)[1].strip()
        return tail.replace(",", "") if re.fullmatch(r"-?[\d,]+(?:\.\d+)?", tail) else tail
    return last_boxed(gold) or gold.strip()


def as_latex(span: str) -> str:
    """The span as LaTeX for math-verify, with the fixes for forms math-verify gets wrong.

    Each fix has a regression test: `90°` (unicode degree sign, read as a symbol by math-verify),
    a sentence's full stop inside the box (`90^\\circ.`), and a number followed by plain unit words
    (`36 dollars`: math-verify strips `\\text{ dollars}` but multiplies bare words in as symbols).
    """
    latex = _UNESCAPED_DOLLAR_RE.sub("", span).strip()
    latex = latex.replace("°", "^\\circ").rstrip(".,;").strip()
    unit = _NUMBER_THEN_WORDS_RE.match(latex)
    return unit.group("number") if unit else latex
