"""The tiny-model builder: deterministic for a seed, digits as single tokens, a working chat template."""

from __future__ import annotations

import hashlib
from pathlib import Path

from transformers import AutoConfig, AutoTokenizer

from adacot.testing.tiny_models import build_tiny_lm

CORPUS = [f"What is {a} + {b}? The answer is {a + b}." for a in range(40) for b in range(0, 40, 3)]


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_same_seed_same_files_other_seed_other_weights(tmp_path: Path) -> None:
    a = build_tiny_lm(CORPUS, tmp_path / "a", seed=3)
    b = build_tiny_lm(CORPUS, tmp_path / "b", seed=3)
    c = build_tiny_lm(CORPUS, tmp_path / "c", seed=4)
    assert digest(a) == digest(b)
    assert digest(a)["model.safetensors"] != digest(c)["model.safetensors"]
    assert digest(a)["tokenizer.json"] == digest(c)["tokenizer.json"]


def test_tokenizer_and_config(tmp_path: Path) -> None:
    where = build_tiny_lm(CORPUS, tmp_path / "m", seed=0)
    tokenizer = AutoTokenizer.from_pretrained(where)
    digits = tokenizer.tokenize("12345")
    assert len(digits) == 5
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 2?"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer.encode(str(rendered), add_special_tokens=False)
    assert tokenizer.convert_tokens_to_ids("<|im_start|>") in ids  # special tokens stay whole
    config = AutoConfig.from_pretrained(where)
    assert (config.model_type, config.head_dim, config.vocab_size) == ("qwen2", 64, len(tokenizer))
    assert tokenizer.eos_token == "<|im_end|>"
