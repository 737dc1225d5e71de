"""Tiny process reward models built locally, for tests, benchmarks and the demo.

Callers: tests/integration/test_prm.py and whoever needs a PRM without a model hub. Three builders:

- `build_tiny_discriminative_prm`: Qwen2ForTokenClassification with 2 labels and a tokenizer that has
  the "<extra_0>" step separator, i.e. the Qwen2.5-Math-PRM convention, loadable with
  AutoModelForTokenClassification.
- `build_tiny_remote_code_prm`: the same convention packaged like the real Qwen2.5-Math-PRM checkpoint:
  config.architectures = ["Qwen2ForProcessRewardModel"], its own modeling file, `auto_map` for AutoModel,
  so loading needs trust_remote_code. The modeling file mirrors the published one's interface (a
  two-layer score head, logits first in the output), not its weights.
- `build_tiny_math_shepherd_prm`: Qwen2ForCausalLM whose tokenizer has the "ки" step tag as one token,
  i.e. the Math-Shepherd convention (P("+") against P("-") at each tag).

What they are good for: exercising the real transformers code paths (chat template, separator
positions, padding, truncation) with scores that differ from step to step. What they are not: judges of
anything; the weights are random. Deterministic: the same `seed` saves the same weights and the
tokenizer depends only on the built-in corpus. The tokenizer comes from adacot.testing.tiny_models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adacot.testing.tiny_models import build_tokenizer

SEPARATOR = "<extra_0>"
STEP_TAG = "ки"

# Enough math-flavoured text for BPE to learn common merges; every byte is in the alphabet anyway.
_CORPUS_LINES = (
    "Please reason step by step, and put your final answer within \\boxed{}.",
    "Step 1: We compute the sum of the first ten positive integers.",
    "The answer is $\\boxed{42}$. Therefore the probability is $\\frac{1}{2}$.",
    "Let $x$ be the number of apples. Then $3x + 5 = 20$, so $x = 5$.",
    "Convert the point to polar coordinates: $r = \\sqrt{x^2 + y^2}$ and $\\theta = \\arctan(y/x)$.",
    "Since the triangle is right-angled, by the Pythagorean theorem $a^2 + b^2 = c^2$.",
    "Subtracting the two equations gives $2y = 6$, hence $y = 3$ and the final answer follows.",
)


def _corpus() -> list[str]:
    arithmetic = [f"{a} + {b} = {a + b}, and {a} \\cdot {b} = {a * b}." for a in range(20) for b in range(7)]
    return list(_CORPUS_LINES) * 8 + arithmetic


def _prm_tokenizer(directory: Path, *, special: str | None = None, plain: str | None = None) -> Any:
    """Train the tiny tokenizer into `directory`, add the PRM's marker token, save, return it."""
    from transformers import AddedToken, AutoTokenizer

    build_tokenizer(_corpus(), directory, vocab_size=512)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    if special is not None:  # a special token: never split, never produced by ordinary text
        tokenizer.add_tokens([AddedToken(special, special=True, normalized=False)], special_tokens=True)
    if plain is not None:  # an ordinary added token: one id wherever it appears in text
        tokenizer.add_tokens([AddedToken(plain, special=False, normalized=False)])
    tokenizer.save_pretrained(directory)
    return tokenizer


def _config(tokenizer: Any, *, hidden: int, layers: int, heads: int, **extra: Any) -> Any:
    from transformers import Qwen2Config

    config_class: Any = Qwen2Config  # transformers' signatures lag its accepted keywords (head_dim)
    pad = tokenizer.pad_token_id
    return config_class(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=hidden // heads,
        max_position_embeddings=4096,
        # Wider than the usual 0.02 so random heads give step scores that visibly differ.
        initializer_range=0.2,
        bos_token_id=pad,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=pad,
        **extra,
    )


def build_tiny_discriminative_prm(
    directory: str | Path, *, seed: int = 0, hidden: int = 64, layers: int = 2, heads: int = 2
) -> Path:
    """Save a random-init Qwen2ForTokenClassification PRM (labels 0 = negative, 1 = positive)."""
    import torch
    from transformers import Qwen2ForTokenClassification

    out = Path(directory)
    tokenizer = _prm_tokenizer(out, special=SEPARATOR)
    config = _config(
        tokenizer,
        hidden=hidden,
        layers=layers,
        heads=heads,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    torch.manual_seed(seed)
    model_class: Any = Qwen2ForTokenClassification
    model_class(config).to(torch.float32).save_pretrained(out)
    return out


def build_tiny_math_shepherd_prm(
    directory: str | Path, *, seed: int = 0, hidden: int = 64, layers: int = 2, heads: int = 2
) -> Path:
    """Save a random-init Qwen2ForCausalLM whose tokenizer keeps "ки" as one token ("+", "-" are bytes)."""
    import torch
    from transformers import Qwen2ForCausalLM

    out = Path(directory)
    tokenizer = _prm_tokenizer(out, plain=STEP_TAG)
    config = _config(tokenizer, hidden=hidden, layers=layers, heads=heads, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model_class: Any = Qwen2ForCausalLM
    model_class(config).to(torch.float32).save_pretrained(out)
    return out


_REMOTE_CODE = '''"""Stand-in for Qwen2.5-Math-PRM's modeling file: Qwen2 body, 2-layer score head."""

import torch
from transformers import Qwen2Config, Qwen2Model, Qwen2PreTrainedModel


class Qwen2ForProcessRewardModel(Qwen2PreTrainedModel):
    config_class = Qwen2Config

    def __init__(self, config):
        super().__init__(config)
        self.model = Qwen2Model(config)
        self.score = torch.nn.Sequential(
            torch.nn.Linear(config.hidden_size, config.hidden_size),
            torch.nn.ReLU(),
            torch.nn.Linear(config.hidden_size, 2),
        )
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return (self.score(hidden),)
'''


def build_tiny_remote_code_prm(directory: str | Path, *, seed: int = 0, hidden: int = 64) -> Path:
    """Save a PRM that loads only through AutoModel with trust_remote_code, like Qwen2.5-Math-PRM."""

    import torch

    out = Path(directory)
    tokenizer = _prm_tokenizer(out, special=SEPARATOR)
    module = _remote_code(out)
    torch.manual_seed(seed)
    model = module.Qwen2ForProcessRewardModel(_config(tokenizer, hidden=hidden, layers=2, heads=2))
    return _save(model, out)


def build_prm_from_lm(lm: str | Path, directory: str | Path, *, seed: int = 0) -> Path:
    """Save a Qwen2.5-Math-PRM-shaped PRM (remote code, `<extra_0>` separator, two-class head) whose
    body starts from the causal LM in `lm`, as the real one starts from Qwen2.5-Math-7B-Instruct.

    The LM's tokenizer gains the separator as a special token (one new embedding row, drawn at random);
    the score head is random. Loads only through AutoModel with trust_remote_code, like the real one.
    """

    import torch
    from transformers import AddedToken, AutoModelForCausalLM, AutoTokenizer

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(lm)
    tokenizer.add_tokens([AddedToken(SEPARATOR, special=True, normalized=False)], special_tokens=True)
    tokenizer.save_pretrained(out)
    body: Any = AutoModelForCausalLM.from_pretrained(lm, dtype=torch.float32)
    module = _remote_code(out)
    config = body.config
    config.vocab_size = len(tokenizer)
    torch.manual_seed(seed)
    model = module.Qwen2ForProcessRewardModel(config)
    body.resize_token_embeddings(len(tokenizer))
    model.model.load_state_dict(body.model.state_dict())
    return _save(model, out)


def _remote_code(out: Path) -> Any:
    """Write modeling_prm.py into `out` and import it (the module a hub PRM ships as remote code)."""
    import importlib.util

    (out / "modeling_prm.py").write_text(_REMOTE_CODE)
    spec = importlib.util.spec_from_file_location("tiny_modeling_prm", out / "modeling_prm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _save(model: Any, out: Path) -> Path:
    """Save the weights and point config.json at the remote code, as Qwen2.5-Math-PRM's does."""
    import json

    model.save_pretrained(out)
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    config["architectures"] = ["Qwen2ForProcessRewardModel"]
    config["auto_map"] = {"AutoModel": "modeling_prm.Qwen2ForProcessRewardModel"}
    config_path.write_text(json.dumps(config, indent=2))
    return out
