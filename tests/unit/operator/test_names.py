"""Child names, labels, hashes, owner references and API paths: deterministic and within Kubernetes'
limits, since the handlers find children again by them."""

from __future__ import annotations

import re

import pytest
from adacot_operator.names import (
    MAX_CHILD_NAME,
    child_name,
    fit_name,
    label_selector,
    labels,
    owner_reference,
    selector,
    spec_hash,
    spec_hash_annotation,
    volume_name,
)
from k8s_objects import sample

from adacot.api import RESOURCE_KINDS, AnyResource
from adacot.api.resource import MAX_NAME_LENGTH

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def resource(kind: str) -> AnyResource:
    return RESOURCE_KINDS[kind].model_validate(sample(kind))  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("GradingRun", "pool-grade"), ("DifficultyBank", "pool-bank"), ("DistillationJob", "pool-distil"),
     ("SFTJob", "pool-sft")],
)  # fmt: skip
def test_short_names_are_name_dash_stage(kind: str, expected: str) -> None:
    assert child_name(kind, "pool") == expected


def test_long_names_are_cut_with_a_hash_and_stay_distinct_labels() -> None:
    longest = "a" * (MAX_NAME_LENGTH - 1) + "b"
    other = "a" * (MAX_NAME_LENGTH - 1) + "c"
    cut = child_name("DistillationJob", longest)
    assert len(cut) == MAX_CHILD_NAME and DNS_LABEL.match(cut)
    assert cut == child_name("DistillationJob", longest)  # deterministic
    assert cut != child_name("DistillationJob", other)
    assert len(cut + "-1023") <= 63  # the Indexed Job's pod hostname <job>-<index> fits
    dashy = fit_name("x" * 48 + "-" * 20, 58)
    assert DNS_LABEL.match(dashy) and len(dashy) <= 58


def test_volume_names_fit_63_characters() -> None:
    assert volume_name("claim", "models") == "claim-models"
    long = volume_name("claim", "m" * 120)
    assert len(long) <= 63 and DNS_LABEL.match(long)


def test_labels_and_selector() -> None:
    bank = resource("DifficultyBank")
    assert labels(bank) == {
        "adacot.dev/kind": "difficultybank",
        "adacot.dev/name": "qwen7b-bank",
        "adacot.dev/stage": "difficultybank",
        "app.kubernetes.io/managed-by": "adacot",
    }
    assert selector(bank).items() <= labels(bank).items()
    assert label_selector(bank) == "adacot.dev/kind=difficultybank,adacot.dev/name=qwen7b-bank"


def test_spec_hash_is_16_hex_of_canonical_json() -> None:
    one = spec_hash({"a": 1, "b": [1, 2]})
    assert re.fullmatch(r"[0-9a-f]{16}", one)
    assert spec_hash({"b": [1, 2], "a": 1}) == one  # key order does not matter
    assert spec_hash({"a": 1, "b": [2, 1]}) != one
    assert spec_hash_annotation("example.org") == "example.org/spec-hash"


def test_owner_reference_is_a_blocking_controller_reference() -> None:
    run = resource("GradingRun")
    assert owner_reference(run) == {
        "apiVersion": "adacot.dev/v1alpha1",
        "kind": "GradingRun",
        "name": "qwen7b-pool",
        "uid": "uid-qwen7b-pool",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    body = sample("GradingRun")
    del body["metadata"]["uid"]
    with pytest.raises(ValueError, match="GradingRun/qwen7b-pool: metadata"):
        owner_reference(RESOURCE_KINDS["GradingRun"].model_validate(body))
