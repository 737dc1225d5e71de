"""Heavy engines behind small interfaces: text generation (vLLM offline, an OpenAI-compatible server,
transformers) and step scoring (process reward models). Stages depend on the protocols in `base`, never
on an engine; `make_generator` / `make_step_scorer` pick the engine from the spec."""
