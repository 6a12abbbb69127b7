"""Configuration: TOML plus environment, secrets by reference, mistakes refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from grpc_server.config import ConfigError, config_from_mapping, load_config


def test_defaults_without_a_file() -> None:
    config = load_config(None, env={})
    assert (config.host, config.port, config.default_ttl_seconds) == ("127.0.0.1", 50051, 3600)
    assert config.providers["openai"].api_key is None


def test_a_full_file_with_secrets_from_env_and_files(tmp_path: Path) -> None:
    secret = tmp_path / "openai.key"
    secret.write_text("sk-from-file\n")
    path = tmp_path / "asyncgate.toml"
    path.write_text(
        f"""
port = 6000
data_dir = "{tmp_path}"
sqlite_synchronous = "full"
url_signing_secret_env = "URL_SECRET"

[providers.openai]
api_key_file = "{secret}"
base_url = "http://127.0.0.1:9/v1"
timeout_seconds = 5

[[virtual_keys]]
id = "team-a"
value_env = "TEAM_A"
allowed_models = ["local/*"]

[retry]
max_attempts = 5

[dispatcher]
concurrency = 0
"""
    )
    url_secret = "a-url-signing-secret-of-32-bytes"
    config = load_config(path, env={"URL_SECRET": url_secret, "TEAM_A": "sk-bf-a"})
    assert config.port == 6000 and config.data_dir == tmp_path
    assert config.url_signing_secret == url_secret
    openai = config.providers["openai"]
    assert (openai.api_key, openai.base_url, openai.timeout_seconds) == (
        "sk-from-file",
        "http://127.0.0.1:9/v1",
        5,
    )
    [key] = config.virtual_keys
    assert (key.id, key.value, key.allowed_models) == ("team-a", "sk-bf-a", ("local/*",))
    assert config.retry.max_attempts == 5 and config.dispatcher.concurrency == 0


def test_openai_environment_variables_are_honoured() -> None:
    config = config_from_mapping({}, env={"OPENAI_API_KEY": "sk-env", "OPENAI_BASE_URL": "http://proxy/v1"})
    assert config.providers["openai"].api_key == "sk-env"
    assert config.providers["openai"].base_url == "http://proxy/v1"


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"prot": 1}, "unknown setting(s) prot"),
        ({"retry": {"max_atempts": 2}}, "retry: unknown setting(s) max_atempts"),
        ({"providers": {"openai": {"key": "x"}}}, "providers.openai: unknown setting(s) key"),
        ({"virtual_keys": [{"id": "a"}]}, "virtual_keys[0]"),
        ({"virtual_keys": [{"id": "a", "value": "x"}, {"id": "a", "value": "y"}]}, "unique"),
        ({"sqlite_synchronous": "OFF"}, "sqlite_synchronous"),
    ],
)
def test_mistakes_are_refused_with_their_place(doc: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)):
        config_from_mapping(doc, env={})
