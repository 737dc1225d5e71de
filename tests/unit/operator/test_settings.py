"""OperatorSettings.from_env: the chart's environment variables, defaults, and errors naming the variable."""

from __future__ import annotations

import json

import pytest
from adacot_operator.settings import DEFAULT_WORKER_IMAGE, OperatorSettings, SettingsError
from pydantic import ValidationError

from adacot.api.common import SecretRef


def test_defaults_without_any_variable() -> None:
    settings = OperatorSettings.from_env({})
    assert settings == OperatorSettings()
    assert (settings.worker_image, settings.worker_service_account) == (DEFAULT_WORKER_IMAGE, "adacot-worker")
    assert (settings.storage_class, settings.storage_size, settings.default_queue) == (None, "10Gi", None)
    assert (settings.metrics_port, settings.prefix, settings.watch_timeout_s) == (9090, "adacot.dev", 300)
    assert settings.claim_mount_root == "/mnt/adacot"
    assert settings.job_ttl_seconds_after_finished == 86400
    assert settings.image_pull_secrets == [] and settings.worker_extra_env == []


def test_every_variable_is_read() -> None:
    env = {
        "ADACOT_WORKER_IMAGE": "registry.local/adacot-worker:2",
        "ADACOT_WORKER_SERVICE_ACCOUNT": "runner",
        "ADACOT_STORAGE_CLASS": "fast-rwx",
        "ADACOT_STORAGE_SIZE": "200Gi",
        "ADACOT_DEFAULT_QUEUE": "team-a",
        "ADACOT_DEFAULT_SCHEDULING": json.dumps(
            {"nodeSelector": {"gpu": "h100"}, "tolerations": [{"key": "gpu", "operator": "Exists"}],
             "priorityClassName": "batch", "runtimeClassName": "nvidia", "affinity": {"podAffinity": {}}}
        ),
        "ADACOT_IMAGE_PULL_SECRETS": " regcred , other,,",
        "ADACOT_WORKER_EXTRA_ENV": json.dumps(
            [{"name": "HF_HUB_OFFLINE", "value": "1"},
             {"name": "TOKEN", "secretKeyRef": {"name": "s", "key": "k"}}]
        ),
        "ADACOT_METRICS_PORT": "0",
        "ADACOT_PREFIX": "ml.example.com",
        "ADACOT_WATCH_TIMEOUT_S": "60",
        "ADACOT_CLAIM_MOUNT_ROOT": "/data",
        "ADACOT_JOB_TTL_SECONDS_AFTER_FINISHED": "600",
    }  # fmt: skip
    s = OperatorSettings.from_env(env)
    assert (s.worker_image, s.worker_service_account) == ("registry.local/adacot-worker:2", "runner")
    assert (s.storage_class, s.storage_size, s.default_queue) == ("fast-rwx", "200Gi", "team-a")
    assert s.default_scheduling.node_selector == {"gpu": "h100"}
    assert s.default_scheduling.tolerations[0].operator == "Exists"
    assert (s.default_scheduling.priority_class_name, s.default_scheduling.runtime_class_name) == (
        "batch",
        "nvidia",
    )
    assert s.default_scheduling.affinity == {"podAffinity": {}}
    assert s.image_pull_secrets == ["regcred", "other"]
    assert s.worker_extra_env[0].value == "1" and s.job_ttl_seconds_after_finished == 600
    assert s.worker_extra_env[1].secret_key_ref == SecretRef(name="s", key="k")
    assert (s.metrics_port, s.prefix, s.watch_timeout_s, s.claim_mount_root) == (
        0,
        "ml.example.com",
        60,
        "/data",
    )


def test_empty_values_mean_the_default() -> None:
    s = OperatorSettings.from_env(
        {"ADACOT_STORAGE_CLASS": "", "ADACOT_DEFAULT_QUEUE": "", "ADACOT_STORAGE_SIZE": ""}
    )
    assert (s.storage_class, s.default_queue, s.storage_size) == (None, None, "10Gi")
    assert (
        OperatorSettings.from_env(
            {"ADACOT_JOB_TTL_SECONDS_AFTER_FINISHED": ""}
        ).job_ttl_seconds_after_finished
        is None
    )


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADACOT_DEFAULT_QUEUE", "from-env")
    assert OperatorSettings.from_env().default_queue == "from-env"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ADACOT_DEFAULT_SCHEDULING": "{nodeSelector"}, "ADACOT_DEFAULT_SCHEDULING: not valid JSON"),
        ({"ADACOT_DEFAULT_SCHEDULING": '{"nodeSelecter": {}}'}, "SCHEDULING.nodeSelecter: Extra"),
        ({"ADACOT_DEFAULT_SCHEDULING": '{"tolerations": [{"operator": "Maybe"}]}'},
         "ADACOT_DEFAULT_SCHEDULING.tolerations[0].operator"),
        ({"ADACOT_WORKER_EXTRA_ENV": '[{"name": "A"}]'}, "ADACOT_WORKER_EXTRA_ENV[0]: Value error, env A"),
        ({"ADACOT_METRICS_PORT": "http"}, "ADACOT_METRICS_PORT: Input should be a valid integer"),
        ({"ADACOT_METRICS_PORT": "70000"}, "ADACOT_METRICS_PORT: Input should be less than"),
        ({"ADACOT_STORAGE_SIZE": "ten gigs"}, "ADACOT_STORAGE_SIZE: String should match pattern"),
        ({"ADACOT_JOB_TTL_SECONDS_AFTER_FINISHED": "-1"}, "FINISHED: Input should be greater than or equal"),
        ({"ADACOT_CLAIM_MOUNT_ROOT": "relative/dir"}, "ADACOT_CLAIM_MOUNT_ROOT: String should match pattern"),
    ],
)  # fmt: skip
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as error:
        OperatorSettings.from_env(env)
    assert message in str(error.value)


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        OperatorSettings().worker_image = "x"
