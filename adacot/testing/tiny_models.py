"""Tiny local models for tests, benchmarks and the demo: a byte-level BPE tokenizer and a random-init Qwen2.

Callers: tests/conftest.py (the session-wide `tiny_lm` fixture), the demo and benchmarks. No model hub is
reachable on the machines this project is built and tested on, so every model is built here from scratch.

What the models are good for: exercising the real engines (vLLM's CPU build, transformers, a real
OpenAI-compatible server) end to end, with a real chat template and real token accounting. What they are
not: useful generators. Random weights emit arbitrary tokens; training one on a synthetic task is left to
the caller. Limits that come from vLLM's CPU attention: head_dim must be 64 (16 is rejected).

Determinism: the tokenizer depends only on the corpus and vocabulary size (BPE training is
deterministic), the weights only on `seed`, so two builds with the same arguments save identical files.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

IM_START, IM_END, EOT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
SPECIAL_TOKENS = (EOT, IM_START, IM_END)

# ChatML, as Qwen2 uses it; `add_generation_prompt` opens the assistant turn so the model answers.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tokenizer(corpus: Iterable[str], directory: str | Path, *, vocab_size: int = 1024) -> Path:
    """Train a byte-level BPE tokenizer on `corpus` and save it (with the ChatML template) to `directory`.

    Digits are pre-split so every digit is its own token (numbers then tokenise the same way wherever
    they appear, which arithmetic tasks need). Returns the directory.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    transformers = _transformers()

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must be at least {256 + len(SPECIAL_TOKENS)} (bytes + special tokens)")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(corpus), trainer=trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=None,
        eos_token=IM_END,
        pad_token=EOT,
        unk_token=None,
        additional_special_tokens=[IM_START],
    )
    fast.chat_template = CHAT_TEMPLATE
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    return out


def build_tiny_qwen2(
    directory: str | Path,
    *,
    hidden: int = 128,
    layers: int = 2,
    heads: int = 2,
    head_dim: int = 64,
    intermediate: int | None = None,
    max_positions: int = 2048,
    seed: int = 0,
) -> Path:
    """Save a random-init Qwen2 causal LM sized to the tokenizer already saved in `directory`.

    Weights are float32 (the CPU engines' dtype) and drawn from `seed`. A generation_config names both
    <|im_end|> and <|endoftext|> as end-of-sequence tokens, so chat answers stop at the end of the turn.
    """
    import torch

    transformers = _transformers()

    out = Path(directory)
    if not (out / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{out}: no tokenizer.json; call build_tokenizer(corpus, {out}) first")
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    eos = [tokenizer.convert_tokens_to_ids(IM_END), tokenizer.convert_tokens_to_ids(EOT)]
    config = transformers.Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate or 2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=head_dim,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=eos[1],
        eos_token_id=eos,
        pad_token_id=eos[1],
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = transformers.Qwen2ForCausalLM(config).to(torch.float32)
    model.generation_config = transformers.GenerationConfig(
        eos_token_id=eos, pad_token_id=eos[1], bos_token_id=eos[1]
    )
    model.save_pretrained(out)
    return out


def build_tiny_lm(corpus: Iterable[str], directory: str | Path, *, seed: int = 0, **sizes: int) -> Path:
    """Tokenizer and model in one directory, ready for vLLM, transformers and the OpenAI server."""
    build_tokenizer(corpus, directory)
    return build_tiny_qwen2(directory, seed=seed, **sizes)


def _transformers() -> Any:
    # Imported lazily (and untyped: its stubs do not know Qwen2Config's keyword arguments).
    return importlib.import_module("transformers")
