"""Fixtures of the emulator's own tests: kubectl against a fresh emulator (optionally with the adacot
CRDs applied) and a kubernetes python client on its kubeconfig."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client, config

from .fixtures import CRDS, KubeApi, Kubectl, make_kubectl


@pytest.fixture
def kubectl(kube_api: KubeApi) -> Kubectl:
    return make_kubectl(kube_api)


@pytest.fixture
def with_crds(kubectl: Kubectl) -> Kubectl:
    kubectl("apply", "-f", str(CRDS))
    return kubectl


@pytest.fixture
def api(kube_api: KubeApi) -> Iterator[client.ApiClient]:
    with config.new_client_from_config(str(kube_api.kubeconfig)) as api_client:  # type: ignore[no-untyped-call]
        yield api_client
