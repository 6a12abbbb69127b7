"""examples/asyncgate.toml: it loads, its values are the defaults, and it shows every setting.

The settings without a default (secrets, providers, virtual keys) appear as commented
lines `# key = value`; uncommenting them must give a valid configuration too, and the two
together must name every setting the dataclasses have: adding a setting without
documenting it here fails this test.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from grpc_server.config import ConfigError, ServerConfig, config_from_mapping, load_config
from grpc_server.config_checks import setting_paths

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "asyncgate.toml"
COMMENTED_SETTING = re.compile(r"^# (\[\[?[\w.]+\]\]?|[\w\"-]+ = .+)$")
"""`# key = value` or `# [table]`: a setting shown commented out (prose comments never look so)."""
ENV = {
    "ASYNCGATE_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
    "TEAM_A_KEY": "sk-bf-team-a",
    "OPENAI_KEY_1": "sk-one",
    "OPENAI_KEY_2": "sk-two",
    "AZURE_OPENAI_API_KEY": "azure-key",
    "ASYNCGATE_JWT_SECRET": "an-example-jwt-signing-secret-of-enough-bytes",
    "ASYNCGATE_S3_ACCESS_KEY_ID": "example-access-key",
    "ASYNCGATE_S3_SECRET_ACCESS_KEY": "example-secret-key",
}


def _uncommented(tmp_path: Path) -> Path:
    text = EXAMPLE.read_text()
    lines = [m.group(1) if (m := COMMENTED_SETTING.match(line)) else line for line in text.splitlines()]
    secret_file = tmp_path / "url-secret"
    secret_file.write_text("an-example-url-signing-secret-of-enough-bytes\n")
    path = tmp_path / "uncommented.toml"
    path.write_text("\n".join(lines).replace("/run/secrets/asyncgate-url-secret", str(secret_file)))
    return path


def test_the_example_loads_and_its_values_are_the_defaults() -> None:
    assert load_config(EXAMPLE, env={}) == load_config(None, env={})


def test_the_example_with_every_commented_setting_in_use_loads(tmp_path: Path) -> None:
    config = load_config(_uncommented(tmp_path), env=ENV)
    assert config.database_url == ENV["ASYNCGATE_DATABASE_URL"]
    assert config.url_signing_secret == "an-example-url-signing-secret-of-enough-bytes"
    [key] = config.virtual_keys
    assert (key.id, key.value) == ("team-a", "sk-bf-team-a")
    assert [k.weight for k in config.providers["openai"].keys] == [3, 1.0]
    assert config.providers["vllm"].operations == ("embedding",)


def _present(doc: Any, parts: list[str]) -> bool:
    """Whether a document sets the setting at `parts` (`*`: any table key or array entry);
    a secret counts when given by NAME, NAME_env or NAME_file, and `keys` when api_key is."""
    if not parts:
        return True
    head, rest = parts[0], parts[1:]
    if head == "*":
        items = doc.values() if isinstance(doc, dict) else doc
        return any(_present(item, rest) for item in items)
    if not isinstance(doc, dict):
        return False
    names = {head, f"{head}_env", f"{head}_file"}
    if head == "keys":
        names |= {"api_key", "api_key_env", "api_key_file"}
    if head == "base_url":
        names.add("endpoint")
    return any(name in doc and (not rest or _present(doc[name], rest)) for name in names)


def test_the_example_shows_every_setting(tmp_path: Path) -> None:
    doc = tomllib.loads(_uncommented(tmp_path).read_text())
    missing = [path for path, _ in setting_paths(ServerConfig) if not _present(doc, path.split("."))]
    assert not missing, f"document {', '.join(missing)} in examples/asyncgate.toml (with its default)"


def test_every_setting_of_the_example_is_explained_by_a_comment() -> None:
    """Each `key = value` line in use follows a comment line (the commented-out providers
    are explained by the block comment above them)."""
    lines = EXAMPLE.read_text().splitlines()
    unexplained = [
        line
        for previous, line in itertools.pairwise(lines)
        if re.match(r"^[\w]+ = ", line) and not previous.startswith("#")
    ]
    assert not unexplained, f"explain these settings in examples/asyncgate.toml: {unexplained}"


def test_the_uncommented_example_would_be_refused_without_its_secrets(tmp_path: Path) -> None:
    """The secrets it names are required: the example does not start silently without them."""
    path = _uncommented(tmp_path)
    doc = tomllib.loads(path.read_text())
    env = {k: v for k, v in ENV.items() if k != "TEAM_A_KEY"}
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(doc, env=env)
    assert str(caught.value) == "virtual_keys[0].value_env: environment variable TEAM_A_KEY is not set"
