"""The `adacot` command line: one module per command (grade, bank, sample, distill, sft, run, eval,
verify, crds, docs, demo) and `stage`, the operator's pod entry points. Shared helpers live in
common.py (resources, validation, running a pipeline) and options.py (flags several commands take).
Heavy libraries are imported inside the commands, so `adacot --help` stays fast."""
