"""Secrets and the DSN: a named source that gives nothing is an error, never a silent default;
the URL-signing key is generated atomically and a short or empty one is refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from grpc_server.capabilities import KEY_FILE, load_secret
from grpc_server.config import ConfigError, config_from_mapping

LONG_SECRET = "a-url-signing-secret-of-40-bytes-length"
DSN = "postgresql://postgres@127.0.0.1:5432/test"


def _entry_for(place: str, source: dict[str, Any]) -> dict[str, Any]:
    """A document giving one secret at `place` from `source` (e.g. {"value_env": "X"})."""
    if place == "virtual_keys":
        return {"virtual_keys": [{"id": "team-a", **source}]}
    if place == "providers.keys":
        return {"providers": {"openai": {"keys": [source]}}}
    if place == "providers":
        return {"providers": {"openai": {k.replace("value", "api_key"): v for k, v in source.items()}}}
    return {k.replace("value", place): v for k, v in source.items()}


PLACES = {
    "database_url": "database_url",
    "url_signing_secret": "url_signing_secret",
    "virtual_keys": "virtual_keys[0].value",
    "providers.keys": "providers.openai.keys[0].value",
    "providers": "providers.openai.api_key",
}


@pytest.mark.parametrize("place", PLACES)
def test_a_named_environment_variable_that_is_not_set_is_an_error(place: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(_entry_for(place, {"value_env": "NOT_SET_ANYWHERE"}), env={})
    assert str(caught.value) == f"{PLACES[place]}_env: environment variable NOT_SET_ANYWHERE is not set"


@pytest.mark.parametrize("place", PLACES)
def test_a_named_environment_variable_that_is_empty_is_an_error(place: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(_entry_for(place, {"value_env": "EMPTY"}), env={"EMPTY": " "})
    assert str(caught.value) == f"{PLACES[place]}_env: environment variable EMPTY is empty"


@pytest.mark.parametrize("place", PLACES)
def test_a_named_file_that_is_missing_or_empty_is_an_error(place: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(_entry_for(place, {"value_file": str(missing)}), env={})
    assert str(caught.value) == f"{PLACES[place]}_file: cannot read {missing}: No such file or directory"
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(_entry_for(place, {"value_file": str(empty)}), env={})
    assert str(caught.value) == f"{PLACES[place]}_file: file {empty} is empty"


@pytest.mark.parametrize("place", PLACES)
def test_a_secret_given_two_ways_is_an_error(place: str) -> None:
    doc = _entry_for(place, {"value": LONG_SECRET, "value_env": "X"})
    with pytest.raises(ConfigError, match=r": give only one of "):
        config_from_mapping(doc, env={"X": LONG_SECRET})


def test_a_secret_of_the_wrong_type_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"url_signing_secret": 123456789}, env={})
    assert str(caught.value) == "url_signing_secret: must be a string, got integer"


def test_messages_about_secrets_give_their_length_not_their_value() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping({"url_signing_secret_env": "S"}, env={"S": "short-secret"})
    assert str(caught.value) == "url_signing_secret: must be at least 32 bytes long, got 12 bytes"


def test_asyncgate_database_url_is_read_when_no_database_url_is_configured() -> None:
    assert config_from_mapping({}, env={"ASYNCGATE_DATABASE_URL": DSN}).database_url == DSN
    assert config_from_mapping({}, env={}).database_url is None
    assert config_from_mapping({}, env={"ASYNCGATE_DATABASE_URL": ""}).database_url is None
    configured = config_from_mapping(
        {"database_url_env": "MY_DSN"}, env={"MY_DSN": "postgresql://other/db", "ASYNCGATE_DATABASE_URL": DSN}
    )
    assert configured.database_url == "postgresql://other/db"


def test_asyncgate_url_secret_is_read_when_no_url_signing_secret_is_configured() -> None:
    config = config_from_mapping({}, env={"ASYNCGATE_URL_SECRET": LONG_SECRET})
    assert config.url_signing_secret == LONG_SECRET
    with pytest.raises(
        ConfigError, match=r"^url_signing_secret: must be at least 32 bytes long, got 5 bytes$"
    ):
        config_from_mapping({}, env={"ASYNCGATE_URL_SECRET": "short"})


def test_the_url_signing_key_is_generated_once_private_and_whole(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    secret = load_secret(None, data_dir)
    path = data_dir / KEY_FILE
    assert len(secret) >= 32 and path.read_bytes() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in data_dir.iterdir()) == [KEY_FILE]  # no temporary file left
    assert load_secret(None, data_dir) == secret


def test_an_empty_key_file_left_by_a_failed_start_is_refused(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    path.touch()
    with pytest.raises(ConfigError) as caught:
        load_secret(None, tmp_path)
    assert str(caught.value).startswith(f"{path}: URL-signing key is 0 bytes, at least 32 needed")
    assert "\n" not in str(caught.value)
    assert path.read_bytes() == b""  # refused, not silently replaced: URLs signed before would break


def test_a_key_file_too_short_is_refused(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_text("x" * 31 + "\n")
    with pytest.raises(ConfigError, match=r"URL-signing key is 31 bytes, at least 32 needed"):
        load_secret(None, tmp_path)


def test_an_unreadable_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).mkdir()  # a directory where the key should be: unreadable as a file
    with pytest.raises(ConfigError, match=r"cannot read the URL-signing key"):
        load_secret(None, tmp_path)


def test_a_configured_secret_too_short_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^url_signing_secret: must be at least 32 bytes long, got 31 bytes$"
    ):
        load_secret("y" * 31, tmp_path)
    assert load_secret("y" * 32, tmp_path) == b"y" * 32
    assert not os.listdir(tmp_path)  # a configured secret writes nothing
