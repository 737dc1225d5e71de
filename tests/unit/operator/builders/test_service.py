"""adacot_operator.builders.service: a multi-node SFTJob's headless Service and the torchrun
rendezvous the Job's pods find through it."""

from __future__ import annotations

from adacot_operator.builders.service import headless_service
from builder_cases import build, container, env, resource


def test_multi_node_sft_gets_a_headless_service_and_torchrun_rendezvous() -> None:
    children = build(resource("SFTJob", nodes=3, masterPort=29600))
    job, service = children["Job"], children["Service"]
    name = job["metadata"]["name"]
    assert name == "qwen7b-sft-sft" == service["metadata"]["name"]
    assert (job["spec"]["completionMode"], job["spec"]["completions"], job["spec"]["parallelism"]) == (
        "Indexed",
        3,
        3,
    )
    pod = job["spec"]["template"]
    assert pod["spec"]["subdomain"] == name
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["port"] == 29600
    variables = env(job)
    assert variables["MASTER_ADDR"] == f"{name}-0.{name}"
    assert (variables["MASTER_PORT"], variables["NNODES"]) == ("29600", "3")
    assert variables["NODE_RANK"] == {
        "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
    }
    assert container(job)["resources"]["limits"] == {"nvidia.com/gpu": "8"}
    single = build(resource("SFTJob"))
    assert "Service" not in single and "completionMode" not in single["Job"]["spec"]
    assert "MASTER_ADDR" not in env(single["Job"])


def test_headless_service_selects_the_resources_pods_on_the_master_port_before_they_are_ready() -> None:
    """The builder alone: the name and annotations it is given, the resource's selector, one TCP port."""
    sft = resource("SFTJob", nodes=2, masterPort=29500)
    made = headless_service(sft, "qwen7b-sft-sft", {"adacot.dev/spec-hash": "abc"})
    assert (made["apiVersion"], made["kind"]) == ("v1", "Service")
    assert made["metadata"]["name"] == "qwen7b-sft-sft"
    assert made["metadata"]["annotations"] == {"adacot.dev/spec-hash": "abc"}
    assert made["spec"]["selector"] == {"adacot.dev/kind": "sftjob", "adacot.dev/name": "qwen7b-sft"}
    assert made["spec"]["publishNotReadyAddresses"] is True
    assert made["spec"]["ports"] == [
        {"name": "rendezvous", "port": 29500, "targetPort": 29500, "protocol": "TCP"}
    ]
