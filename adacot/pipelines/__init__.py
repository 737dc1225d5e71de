"""Pipelines: one `run_<kind>(resource, out_dir, ...)` per resource kind, the I/O edge around the stages.

They read inputs, call the stage functions (adacot.stages, adacot.training), write the artifact
directory (data shards, MANIFEST.json, _SUCCESS), its summary.json and the termination message.
`adacot stage <kind>` in a pod and `adacot run` both call them, and nothing else composes a stage:
modules `grading_run`, `difficulty_bank`, `distillation_job`, `sft_job` (one per kind), `sharded` (the
shard / resume / merge skeleton the two sharded kinds share), `evaluation` (benchmarks after SFT, and
`adacot eval`), `termination` (the message for the operator).
"""
