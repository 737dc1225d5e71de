"""An answer span as LaTeX for math-verify, with the fixes for forms math-verify reads wrongly.

math-verify is the comparison engine; this module only rewrites a span (the model's answer and the
reference alike, so both sides get the same treatment) where math-verify would read the mathematical
content wrongly. Each rewrite keeps the content a careful grader would compare:

  `90°`, `3.83×10^35`          unicode signs to LaTeX (`^\\circ`, `\\times`)
  `2nd`, `3^{\\text{rd}}`       ordinal suffixes dropped: the ordinal's number
  `3.83e35`, `1.5E-3`          E notation to `3.83\\times 10^{35}` (math-verify reads `e` as Euler's e)
  `x = 2 \\text{ when } y = 3`  a trailing condition (for, when, if, where, ...) dropped
  `36 dollars`, `7 km/h`       a number followed by unit words: the number
  `There are 3 objects left`   a plain sentence holding exactly one number: that number
  `C) The flux stabilizes`     a choice letter followed by its option text: the letter

Not rewritten: anything with two numbers in prose ("3 remain and 2 are red" is not guessed), lists
joined by "and", and every form math-verify already reads (`\\text{}` units, percent, degrees).
"""

from __future__ import annotations

import re

_UNESCAPED_DOLLAR_RE = re.compile(r"(?<!\\)\$")
_NUMBER = r"(?:\\\$)?-?[\d.,{}\\!]*\d"
# A number (maybe `\$`-prefixed, with `,`/`{,}`/`,\!` separators) then plain words of 2+ letters.
_NUMBER_THEN_WORDS_RE = re.compile(rf"^(?P<number>{_NUMBER})\s+(?:[A-Za-z]{{2,}}\s*)+$")
# A number then one unit with a power or a per: `5 cm^2`, `7 km/h`, `3 m/s^{2}`. A single letter
# with a power is an expression (`2 x^2`), so a unit of one letter needs a per.
_UNIT = r"[A-Za-z]{1,5}(?:\^\{?-?\d\}?)?"
_NUMBER_THEN_UNIT_RE = re.compile(
    rf"^(?P<number>{_NUMBER})\s*(?:[A-Za-z]{{2,5}}(?:\^\{{?-?\d\}}?)?(?:\s*/\s*{_UNIT})?|[A-Za-z]\s*/\s*{_UNIT})$"
)
_SUFFIX = r"(?:st|nd|rd|th)"
_ORDINAL_RES = (
    re.compile(rf"\\(?:text|textrm|mathrm|mbox)\{{\s*(\d+)\s*{_SUFFIX}\s*\}}"),  # \text{3rd}
    re.compile(rf"(\d)\s*\^\s*\{{?\s*(?:\\(?:text|textrm|mathrm|mbox)\s*\{{)?\s*{_SUFFIX}\s*\}}?\s*\}}?"),
    re.compile(rf"(\d){_SUFFIX}\b"),  # 21st, 3rd
)
# `2e+1` and `2e-1` are as likely 2e + 1 as 20: a signed one-digit exponent needs a decimal mantissa.
_E_NOTATION_RE = re.compile(r"(?<![\w.\\])(\d+\.\d+|\d+(?![eE][+-]\d(?!\d)))[eE]([+-]?\d+)(?![\w.])")
_CONDITION = r"(?:for|when|whenever|if|where|provided|assuming|given)\b"
_SPACING = r"(?:\s|,|;|\\quad|\\qquad|\\[,;:! ])*"
_TEXT_CONDITION_RE = re.compile(
    rf"{_SPACING}\(?\s*\\(?:text|textrm|mbox|mathrm)\s*\{{\s*{_CONDITION}.*$", re.DOTALL
)
_PLAIN_CONDITION_RE = re.compile(rf"(?:\s*,\s*|\s+){_CONDITION}\s.*$", re.DOTALL)
_NUMBER_TOKEN_RE = re.compile(r"(?:\\\$|\$)?-?\d[\d,]*(?:\.\d+)?")
_PROSE_RE = re.compile(r"^[A-Za-z0-9$'’,.()\- ]+$")
# "June 5" is a date, not 5: only a sentence of 3+ words is read for its one number.
_PROSE_WORDS = 3
_CHOICE_RE = re.compile(r"^\(?(?P<letter>[A-J])\)?[).:]\s+[A-Za-z]")


def _ordinals(latex: str) -> str:
    for pattern in _ORDINAL_RES:
        latex = pattern.sub(r"\1", latex)
    return latex


def _without_condition(latex: str) -> str:
    """`A = \\pi r^2, \\text{for } r > 0` -> `A = \\pi r^2`; a condition that is the whole span stays."""
    if "\\begin" in latex or "otherwise" in latex:  # piecewise answers keep their conditions
        return latex
    for pattern in (_TEXT_CONDITION_RE, _PLAIN_CONDITION_RE):
        match = pattern.search(latex)
        if match and match.start() > 0 and re.search(r"[\w}]", latex[: match.start()]):
            return latex[: match.start()].strip()
    return latex


def _prose(latex: str) -> str:
    """A plain sentence with exactly one number -> the number; `C) text` -> `C`; otherwise as is."""
    if not _PROSE_RE.match(latex) or len(re.findall(r"[A-Za-z]{2,}", latex)) < _PROSE_WORDS:
        return latex
    numbers: list[str] = _NUMBER_TOKEN_RE.findall(latex)
    if len(numbers) == 1:
        return numbers[0].lstrip("$").rstrip(",.")
    choice = _CHOICE_RE.match(latex)
    return choice.group("letter") if choice and not numbers else latex


def as_latex(span: str) -> str:
    """The span as LaTeX for math-verify (see the module docstring for each rewrite)."""
    latex = _UNESCAPED_DOLLAR_RE.sub("", span).strip()
    latex = latex.replace("°", "^\\circ").replace("×", "\\times ").replace("·", "\\cdot ")
    latex = latex.rstrip(".,;").strip()
    latex = _without_condition(_ordinals(latex))
    latex = _E_NOTATION_RE.sub(r"\1\\times 10^{\2}", latex)
    for unit_re in (_NUMBER_THEN_WORDS_RE, _NUMBER_THEN_UNIT_RE):
        unit = unit_re.match(latex)
        if unit:
            return unit.group("number")
    return _prose(latex)
