"""The stages: pure functions from spec and input rows to output rows (grading, banking, sampling,
distillation, training). File, network and cluster I/O stay at the edges (adacot.pipelines, backends).

`steps` cuts a response into reasoning steps for the PRM-Grader; `levels` holds the grading rules
(step and sample aggregation, the solved rule, score-to-level mapping, level histograms and P_eval).
"""
