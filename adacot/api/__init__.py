"""The one typed contract of adacot's four resources (GradingRun, DifficultyBank, DistillationJob,
SFTJob). The CRDs, the CLI's YAML and the pods' config are all generated from or parsed by these
models. This package imports no torch, vllm, kopf or kubernetes (checked by import-linter)."""
