"""Pick the generation engine a spec asks for.

Callers: the grading and distillation pipelines (`make_generator`). The engines are imported lazily so
that choosing the HTTP backend never imports torch or vLLM. Where weights are found is
adacot.backends.models.
"""

from __future__ import annotations

from pathlib import Path

from adacot.api.common import ModelSpec
from adacot.api.generation import InferenceSpec
from adacot.backends.base import Generator
from adacot.backends.models import resolve_model


def make_generator(
    model: ModelSpec,
    inference: InferenceSpec,
    *,
    chat: bool = True,
    claim_root: str | Path | None = None,
) -> Generator:
    """The Generator `inference.engine` names: vllm (offline engine), http (endpoint) or transformers.

    `chat` renders chat prompts with the model's chat template (vllm, transformers) or sends them to
    /chat/completions (http; the endpoint's own `api` setting wins there).
    """
    if inference.engine == "http":
        from adacot.backends.openai_http import OpenAIGenerator

        assert inference.endpoint is not None  # InferenceSpec guarantees it for http
        return OpenAIGenerator(inference.endpoint)
    source = resolve_model(model, claim_root=claim_root)
    if inference.engine == "vllm":
        from adacot.backends.vllm import VllmGenerator

        return VllmGenerator(model, inference.vllm, chat=chat, batch_size=inference.batch_size, source=source)
    from adacot.backends.hf import HFGenerator

    return HFGenerator(model, chat=chat, batch_size=inference.batch_size, source=source)
