"""Every setting has a type (from its annotation) and a range rule, and both are enforced.

The first tests walk the dataclasses, so a setting added later is covered without a change
here: it must have a rule in grpc_server/config_checks.py RULES, a wrong type for it is
refused naming it, and a negative number for it is refused naming it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from grpc_server.config import ConfigError, ServerConfig, check_config, config_from_mapping
from grpc_server.config_checks import OPERATIONS, RULES, describe, setting_paths
from grpc_server.domain.jobs import RequestType

SETTINGS = dict(setting_paths(ServerConfig))
SECRET_VALUE = "a-value-long-enough-for-a-url-secret"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRETS = {"url_signing_secret", "database_url", "virtual_keys.*.value", "providers.*.keys.*.value"}
"""Settings given as NAME / NAME_env / NAME_file (tested in test_config_secrets.py)."""


def test_every_setting_has_a_range_rule_and_every_rule_a_setting() -> None:
    missing = sorted(set(SETTINGS) - set(RULES))
    stale = sorted(set(RULES) - set(SETTINGS))
    assert not missing, (
        f"add a range rule for {', '.join(missing)} to RULES in grpc_server/config_checks.py "
        "(ANY if the type is all there is to check)"
    )
    assert not stale, f"RULES in grpc_server/config_checks.py names settings that do not exist: {stale}"


def test_every_setting_has_an_annotation_the_loader_can_read() -> None:
    unreadable = []
    for path, hint in SETTINGS.items():
        try:
            describe(hint)
        except TypeError:
            unreadable.append(f"{path}: {hint!r}")
    assert not unreadable, f"config_checks.read_value cannot read: {unreadable}"


def test_the_operations_an_openai_compatible_provider_may_offer_are_the_request_types() -> None:
    assert set(OPERATIONS) == {t.value for t in RequestType}


def _doc_setting(path: str, value: Any) -> tuple[dict[str, Any], str]:
    """A document setting `path` to `value` (with whatever its table needs besides), and the
    name the error message must give it."""
    parts = path.split(".")
    if parts[0] == "virtual_keys":
        entry: dict[str, Any] = {"id": "team-a", "value": SECRET_VALUE, parts[2]: value}
        return {"virtual_keys": [entry]}, f"virtual_keys[0].{parts[2]}"
    if parts[0] == "webhooks":
        hook: dict[str, Any] = {"name": "hook", "url": "http://127.0.0.1:9/", "secret": WEBHOOK_SECRET}
        if parts[2] == "secrets":
            del hook["secret"]  # one of secret / secrets
        return {"webhooks": [{**hook, parts[2]: value}]}, f"webhooks[0].{parts[2]}"
    if parts[0] == "providers" and parts[2] == "keys":
        key = {"value": SECRET_VALUE, parts[4]: value}
        return {"providers": {"p": {"kind": "openai", "keys": [key]}}}, f"providers.p.keys[0].{parts[4]}"
    if parts[0] == "providers":
        return {"providers": {"p": {parts[2]: value}}}, f"providers.p.{parts[2]}"
    doc: dict[str, Any] = {}
    table = doc
    for part in parts[:-1]:
        table = table.setdefault(part, {})
    table[parts[-1]] = value
    return doc, path


def _wrong_values(hint: Any) -> Iterator[Any]:
    """TOML values of the wrong type for a setting described as `describe(hint)`."""
    want = describe(hint)
    if want == "an integer":
        yield from ("8", 8.5, True, [8])
    elif want == "a number":
        yield from ("8", True, float("inf"), float("nan"))
    elif want == "a boolean":
        yield from ("true", 1)
    elif want.startswith("an array"):
        yield from ("local/*", 3)
    elif want.startswith("a table"):
        yield from ("x", [1])
    else:  # a string or a path
        yield from (8, ["x"], True)


WRONG_TYPES = [
    pytest.param(path, value, id=f"{path}={value!r}")
    for path, hint in SETTINGS.items()
    if path not in SECRETS
    for value in _wrong_values(hint)
]


@pytest.mark.parametrize(("path", "value"), WRONG_TYPES)
def test_a_value_of_the_wrong_type_is_refused_naming_the_setting(path: str, value: Any) -> None:
    doc, name = _doc_setting(path, value)
    with pytest.raises(ConfigError, match=rf"^{re.escape(name)}(\[\d+\])?: must be "):
        config_from_mapping(doc, env={})


NUMERIC = [path for path, hint in SETTINGS.items() if describe(hint) in ("an integer", "a number")]


@pytest.mark.parametrize("path", NUMERIC)
def test_a_negative_number_is_refused_for_every_numeric_setting(path: str) -> None:
    doc, name = _doc_setting(path, -1)
    with pytest.raises(ConfigError, match=rf"^{re.escape(name)}: must be >=? \d+, got -1$"):
        config_from_mapping(doc, env={})


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"dispatcher": {"lease_seconds": 0}}, "dispatcher.lease_seconds: must be > 0, got 0"),
        (
            {"dispatcher": {"poll_interval_seconds": 0.0}},
            "dispatcher.poll_interval_seconds: must be > 0, got 0.0",
        ),
        (
            {"dispatcher": {"sweep_interval_seconds": 0}},
            "dispatcher.sweep_interval_seconds: must be > 0, got 0",
        ),
        ({"dispatcher": {"job_deadline_seconds": 0}}, "dispatcher.job_deadline_seconds: must be > 0, got 0"),
        ({"dispatcher": {"max_job_attempts": 0}}, "dispatcher.max_job_attempts: must be >= 1, got 0"),
        (
            {"dispatcher": {"lease_seconds": 1e12}},
            "dispatcher.lease_seconds: must be <= 316224000 (ten years), got 1000000000000.0",
        ),
        ({"default_ttl_seconds": -5}, "default_ttl_seconds: must be > 0, got -5"),
        ({"max_ttl_seconds": 0}, "max_ttl_seconds: must be > 0, got 0"),
        ({"port": 65536}, "port: must be <= 65535, got 65536"),
        ({"host": ""}, "host: must not be empty, got ''"),
        ({"data_dir": ""}, "data_dir: must not be empty"),
        ({"database_pool_size": 0}, "database_pool_size: must be >= 1, got 0"),
        ({"max_message_bytes": 2**31}, "max_message_bytes: must be <= 2147483647, got 2147483648"),
        ({"max_images": 0}, "max_images: must be >= 1, got 0"),
        ({"local_max_pixels": 0}, "local_max_pixels: must be >= 1, got 0"),
        ({"max_embedding_tokens": 0}, "max_embedding_tokens: must be >= 1, got 0"),
        ({"max_embedding_chars": 0}, "max_embedding_chars: must be >= 1, got 0"),
        ({"upload_idle_timeout_seconds": 0}, "upload_idle_timeout_seconds: must be > 0, got 0"),
        ({"max_staged_upload_bytes": 0}, "max_staged_upload_bytes: must be >= 1, got 0"),
        ({"sqlite_synchronous": "OFF"}, "sqlite_synchronous: must be one of NORMAL, FULL, EXTRA, got 'OFF'"),
        ({"retry": {"max_attempts": 0}}, "retry.max_attempts: must be >= 1, got 0"),
        ({"retry": {"attempt_timeout_seconds": 0}}, "retry.attempt_timeout_seconds: must be > 0, got 0"),
        (
            {"image_pixel_budget": 1000},
            "image_pixel_budget: must be >= max_image_pixels (67108864), got 1000",
        ),
        (
            {"default_ttl_seconds": 100, "max_ttl_seconds": 10},
            "max_ttl_seconds: must be >= default_ttl_seconds (100), got 10",
        ),
        (
            {"max_image_bytes": 2000, "max_staged_upload_bytes": 1000},
            "max_staged_upload_bytes: must be >= max_image_bytes (2000), got 1000",
        ),
        (
            {"retry": {"base_delay_seconds": 5, "max_delay_seconds": 1}},
            "retry.max_delay_seconds: must be >= retry.base_delay_seconds (5), got 1",
        ),
        (
            {"providers": {"openai": {"max_response_bytes": 0}}},
            "providers.openai.max_response_bytes: must be >= 1, got 0",
        ),
        (
            {"providers": {"openai": {"timeout_seconds": 0}}},
            "providers.openai.timeout_seconds: must be > 0, got 0",
        ),
        (
            {"providers": {"openai": {"max_concurrency": 0}}},
            "providers.openai.max_concurrency: must be >= 1, got 0",
        ),
        (
            {"providers": {"v": {"kind": "openai-compatible", "base_url": "10.0.0.5:8000"}}},
            "providers.v.base_url: must be an http:// or https:// URL with a host, got '10.0.0.5:8000'",
        ),
        (
            {"providers": {"v": {"kind": "openai-compatible", "operations": ["embedding", "chat"]}}},
            "providers.v.operations[1]: must be one of embedding, image_edit, image_generation,"
            " image_variation, got 'chat'",
        ),
        (
            {"providers": {"azure": {"deployments": {"gpt-image-1": ""}}}},
            "providers.azure.deployments.gpt-image-1: must not be empty, got ''",
        ),
        (
            {"providers": {"openai": {"keys": [{"value": SECRET_VALUE, "weight": 0}]}}},
            "providers.openai.keys[0].weight: must be > 0, got 0",
        ),
        ({"providers": {"a/b": {}}}, "providers.a/b: a provider name must be non-empty and hold no '/'"),
        (
            {"providers": {"azure": {"base_url": "https://a.example", "endpoint": "https://b.example"}}},
            "providers.azure: give base_url or endpoint, not both",
        ),
        (
            {"virtual_keys": [{"id": "a", "value": SECRET_VALUE, "allowed_models": ["gpt-image-1"]}]},
            "virtual_keys[0].allowed_models[0]: must be provider/model or provider/*"
            " (e.g. openai/gpt-image-1), got 'gpt-image-1'",
        ),
        (
            {"virtual_keys": [{"id": "", "value": SECRET_VALUE}]},
            "virtual_keys[0].id: must not be empty, got ''",
        ),
    ],
)
def test_a_value_out_of_range_is_refused_with_one_line_naming_it(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(doc, env={})
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"virtual_keys": [{"id": "a", "value": SECRET_VALUE, "allowed_model": ["local/*"]}]},
            "virtual_keys[0]: unknown setting(s) allowed_model (did you mean allowed_models?)",
        ),
        (
            {"providers": {"openai": {"keys": [{"value": SECRET_VALUE, "wieght": 2}]}}},
            "providers.openai.keys[0]: unknown setting(s) wieght (did you mean weight?)",
        ),
        ({"dispatcher": {"lease": 3}}, "dispatcher: unknown setting(s) lease"),
        ({"retry": {"max_atempts": 2}}, "retry: unknown setting(s) max_atempts (did you mean max_attempts?)"),
        ({"prot": 1, "hots": "x"}, "unknown setting(s) hots, prot"),
        (
            {"virtual_keys": {"id": "a"}},
            "virtual_keys: must be an array of tables ([[virtual_keys]]), got table",
        ),
        ({"virtual_keys": ["sk-a"]}, "virtual_keys[0]: must be a table, got string"),
        ({"providers": {"openai": "sk-a"}}, "providers.openai: must be a table, got string"),
        ({"dispatcher": 3}, "dispatcher: must be a table, got integer 3"),
    ],
)
def test_unknown_keys_and_misshapen_tables_are_refused_at_every_level(
    doc: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(doc, env={})
    assert str(caught.value).startswith(message)


def test_an_integer_is_accepted_where_a_number_is_expected() -> None:
    config = config_from_mapping(
        {"dispatcher": {"lease_seconds": 12}, "retry": {"max_delay_seconds": 4}}, env={}
    )
    assert (config.dispatcher.lease_seconds, config.retry.max_delay_seconds) == (12, 4)


def test_the_defaults_are_in_range() -> None:
    check_config(ServerConfig())


def test_a_configuration_changed_after_loading_is_checked_too(tmp_path: Path) -> None:
    """The command line's --grpc-port and --data-dir override the file; check_config sees them."""
    from dataclasses import replace

    with pytest.raises(ConfigError, match=r"^port: must be <= 65535, got 70000$"):
        check_config(replace(config_from_mapping({}, env={}), port=70000))
