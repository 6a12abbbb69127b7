"""`[[webhooks]]`: endpoints read with their defaults, secrets from every source (one or a
rotation), and every mistake refused at load with one line naming the setting."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from grpc_server.config import WEBHOOK_RETRY_SCHEDULE, ConfigError, WebhookEndpoint, config_from_mapping

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 24).decode()


def _hook(**settings: Any) -> dict[str, Any]:
    return {"webhooks": [{"name": "orders", "url": "https://hooks.example.com/in", **settings}]}


def _load(doc: dict[str, Any], env: dict[str, str] | None = None) -> tuple[WebhookEndpoint, ...]:
    return config_from_mapping(doc, env=env or {}).webhooks


def test_an_endpoint_takes_its_defaults() -> None:
    [endpoint] = _load(_hook(secret=SECRET))
    assert endpoint == WebhookEndpoint(name="orders", url="https://hooks.example.com/in", secrets=(SECRET,))
    assert endpoint.events == ("async_job.completed", "async_job.failed", "async_job.cancelled")
    assert (endpoint.enabled, endpoint.timeout_seconds, endpoint.max_concurrency) == (True, 10.0, 8)
    assert endpoint.max_result_bytes == 256 * 1024
    assert endpoint.retry_schedule_seconds == (5, 300, 1800, 7200, 18000, 36000, 36000)


def test_the_default_schedule_spans_more_than_a_day() -> None:
    assert sum(WEBHOOK_RETRY_SCHEDULE) > 24 * 3600


def test_no_webhooks_by_default() -> None:
    assert _load({}) == ()


def test_every_setting_is_read() -> None:
    [endpoint] = _load(
        _hook(
            secret=SECRET,
            events=["async_job.failed"],
            enabled=False,
            timeout_seconds=2.5,
            max_concurrency=1,
            max_result_bytes=0,
            retry_schedule_seconds=[1, 2],
        )
    )
    assert endpoint.events == ("async_job.failed",)
    assert (endpoint.enabled, endpoint.timeout_seconds, endpoint.max_concurrency) == (False, 2.5, 1)
    assert (endpoint.max_result_bytes, endpoint.retry_schedule_seconds) == (0, (1, 2))


def test_secrets_come_inline_from_the_environment_or_from_files(tmp_path: Path) -> None:
    secret_file = tmp_path / "hook-secret"
    secret_file.write_text(SECRET + "\n")
    env = {"HOOK_NEW": SECRET, "HOOK_OLD": OLD_SECRET}
    assert _load(_hook(secret_env="HOOK_NEW"), env)[0].secrets == (SECRET,)
    assert _load(_hook(secret_file=str(secret_file)))[0].secrets == (SECRET,)
    assert _load(_hook(secrets=[SECRET, OLD_SECRET]))[0].secrets == (SECRET, OLD_SECRET)
    assert _load(_hook(secrets_env=["HOOK_NEW", "HOOK_OLD"]), env)[0].secrets == (SECRET, OLD_SECRET)
    assert _load(_hook(secrets_file=[str(secret_file)]))[0].secrets == (SECRET,)


def test_an_unpadded_secret_is_accepted() -> None:
    unpadded = SECRET.rstrip("=")
    assert unpadded != SECRET
    assert _load(_hook(secret=unpadded))[0].secrets == (unpadded,)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            _hook(),
            "webhooks[0]: secret (or secret_env / secret_file / secrets / secrets_env / secrets_file)"
            " is required",
        ),
        ({"webhooks": [{"url": "https://a.example", "secret": SECRET}]}, "webhooks[0]: name is required"),
        ({"webhooks": [{"name": "a", "secret": SECRET}]}, "webhooks[0]: url is required"),
        (_hook(secret=SECRET, secrets=[SECRET]), "webhooks[0].secret: give only one of secret, secrets"),
        (_hook(secrets=[]), "webhooks[0].secrets: must name at least one secret"),
        (_hook(secrets="x"), "webhooks[0].secrets: must be an array of strings, got string"),
        (
            _hook(secrets_env=["NOT_SET"]),
            "webhooks[0].secrets_env[0]: environment variable NOT_SET is not set",
        ),
        (
            _hook(secret="whsec_" + base64.b64encode(b"k" * 23).decode()),
            "webhooks[0].secrets[0]: must be whsec_<base64> of at least 24 bytes decoded, got 38 bytes",
        ),
        (
            _hook(secret="k" * 40),
            "webhooks[0].secrets[0]: must be whsec_<base64> of at least 24 bytes decoded, got 40 bytes",
        ),
        (
            _hook(secrets=[SECRET, "whsec_not base64 at all!!!!!!!!!!!!!!!"]),
            "webhooks[0].secrets[1]: must be whsec_<base64> of at least 24 bytes decoded, got 38 bytes",
        ),
        (
            _hook(secret=SECRET, url="ftp://hooks.example.com"),
            "webhooks[0].url: must be an http:// or https:// URL with a host, got 'ftp://hooks.example.com'",
        ),
        (
            {"webhooks": [{"name": "Orders", "url": "https://a.example", "secret": SECRET}]},
            "webhooks[0].name: must be 1 to 64 of a-z, 0-9, _ and -, got 'Orders'",
        ),
        (
            {"webhooks": [{"name": "a" * 65, "url": "https://a.example", "secret": SECRET}]},
            f"webhooks[0].name: must be 1 to 64 of a-z, 0-9, _ and -, got '{'a' * 65}'",
        ),
        (
            _hook(secret=SECRET, events=["async_job.completed", "job.done"]),
            "webhooks[0].events[1]: must be one of async_job.completed, async_job.failed,"
            " async_job.cancelled, got 'job.done'",
        ),
        (
            _hook(secret=SECRET, events=[]),
            "webhooks[0].events: must name at least one event (leave it out for all)",
        ),
        (_hook(secret=SECRET, timeout_seconds=0), "webhooks[0].timeout_seconds: must be > 0, got 0"),
        (_hook(secret=SECRET, max_concurrency=0), "webhooks[0].max_concurrency: must be >= 1, got 0"),
        (
            _hook(secret=SECRET, retry_schedule_seconds=[5, -1]),
            "webhooks[0].retry_schedule_seconds[1]: must be >= 0, got -1",
        ),
        (_hook(secret=SECRET, retries=3), "webhooks[0]: unknown setting(s) retries"),
        ({"webhooks": {"orders": {}}}, "webhooks: must be an array of tables ([[webhooks]]), got table"),
        (
            {"webhooks": [_hook(secret=SECRET)["webhooks"][0]] * 2},
            "webhooks: the name 'orders' is given twice; names must be unique",
        ),
    ],
)
def test_a_mistake_is_refused_naming_the_setting(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(doc, env={})
    assert str(caught.value) == message


def test_a_refused_secret_is_never_shown() -> None:
    wrong = "whsec_c2hvcnQ="
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(_hook(secret=wrong), env={})
    assert wrong not in str(caught.value) and "c2hvcnQ" not in str(caught.value)
