"""Model resolution and engine choice: clear errors before any engine starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from adacot.api.common import ModelSpec, SecretRef
from adacot.api.generation import InferenceSpec
from adacot.backends.factory import make_generator
from adacot.backends.models import ModelNotFoundError, hub_token, resolve_model


def model_dir(root: Path) -> Path:
    (root / "m").mkdir(parents=True)
    (root / "m" / "config.json").write_text("{}")
    return root / "m"


def test_local_path_and_claim_root(tmp_path: Path) -> None:
    where = model_dir(tmp_path)
    assert resolve_model(ModelSpec(path=str(where))) == str(where)
    assert resolve_model(ModelSpec(path="m", claim_name="models"), claim_root=tmp_path) == str(where)


@pytest.mark.parametrize(
    ("path", "message"),
    [("nowhere", "does not exist"), ("empty", "no config.json")],
)
def test_bad_local_path(tmp_path: Path, path: str, message: str) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match=message):
        resolve_model(ModelSpec(path=path), claim_root=tmp_path)


def test_hub_id_without_network_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache
    with pytest.raises(ModelNotFoundError, match=r"Qwen/Qwen2.5-7B-Instruct.*set model.path"):
        resolve_model(ModelSpec(hub_id="Qwen/Qwen2.5-7B-Instruct"))
    for engine in ("vllm", "transformers"):
        with pytest.raises(ModelNotFoundError):
            make_generator(ModelSpec(hub_id="Qwen/Qwen2.5-7B-Instruct"), InferenceSpec(engine=engine))


def test_hub_token_comes_from_the_secret_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ModelSpec(hub_id="org/model", token=SecretRef(name="hf", key="token"))
    monkeypatch.delenv("ADACOT_SECRET_HF_TOKEN", raising=False)
    with pytest.raises(ModelNotFoundError, match="ADACOT_SECRET_HF_TOKEN"):
        hub_token(spec)
    monkeypatch.setenv("ADACOT_SECRET_HF_TOKEN", "hf_x")
    assert hub_token(spec) == "hf_x"
    assert hub_token(ModelSpec(hub_id="org/model")) is None
