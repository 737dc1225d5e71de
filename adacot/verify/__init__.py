"""Result-Verifiers: decide whether a model's answer is right. Math by symbolic equivalence
(math-verify), code by running the program against tests in a sandbox. A sample that cannot be
judged is a Verdict with a reason, never an exception."""
