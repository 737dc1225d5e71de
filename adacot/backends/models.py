"""Where a model's weights are: a local directory (checked) or a hub id that can be fetched from here.

Callers: every engine (vLLM, transformers, the PRMs, the in-pod teacher server). Kept apart from the
engine factory so that the engines and the factory do not import each other.

Limits: a hub id is only usable where the hub answers (or the model is already in the local Hugging Face
cache); without network that is a clear error raised before any engine starts. A model on a claim is
looked up under `claim_root` (where the stage mounts the claim); without one the path is used as given,
as under `adacot run`.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from adacot.api.common import ModelSpec

HUB_HOST = "huggingface.co"


class ModelNotFoundError(FileNotFoundError):
    """The model named by a spec cannot be found or fetched from here."""


def resolve_model(model: ModelSpec, *, claim_root: str | Path | None = None) -> str:
    """A local directory (checked to hold a config.json) or a hub id that can be fetched from here."""
    if model.path is not None:
        return str(_local_model_dir(model.path, claim_root))
    assert model.hub_id is not None  # ModelSpec guarantees one of path / hubId
    if _in_hub_cache(model.hub_id, model.revision) or _hub_reachable():
        return model.hub_id
    raise ModelNotFoundError(
        f"model.hubId {model.hub_id!r}: the model is not in the local Hugging Face cache and "
        f"{HUB_HOST} cannot be reached from here (no network, or HF_HUB_OFFLINE is set); "
        "put the weights on a volume and set model.path instead"
    )


def hub_token(model: ModelSpec) -> str | None:
    """The hub access token from the Secret's environment variable, if the spec names one."""
    if model.token is None:
        return None
    value = os.environ.get(model.token.env_var)
    if not value:
        raise ModelNotFoundError(
            f"model.token: environment variable {model.token.env_var} (Secret "
            f"{model.token.name}/{model.token.key}) is not set"
        )
    return value


def _local_model_dir(path: str, claim_root: str | Path | None) -> Path:
    where = Path(claim_root) / path if claim_root is not None else Path(path)
    if not where.is_dir():
        raise ModelNotFoundError(f"model.path {path!r}: directory {where} does not exist")
    if not (where / "config.json").is_file():
        raise ModelNotFoundError(f"model.path {path!r}: {where} has no config.json (not a model directory)")
    return where


def _in_hub_cache(hub_id: str, revision: str | None) -> bool:
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(hub_id, revision=revision, local_files_only=True)
    except Exception:  # any failure means "not usable offline"
        return False
    return True


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return False
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout_s):
            return True
    except OSError:
        return False
