"""Server configuration: frozen dataclasses, loaded once from TOML plus environment.

Nothing reads settings globally: `load_config` builds a ServerConfig and it is
passed down explicitly. Secrets (provider keys, virtual key values, the URL
signing secret) may be given inline for tests, but deployments should point at
environment variables (`*_env`) or files (`*_file`), so none lives in the repo.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

MB = 1024 * 1024


@dataclass(frozen=True)
class ApiKey:
    """One provider key; several spread the load by weight."""

    value: str
    weight: float = 1.0


@dataclass(frozen=True)
class ProviderSettings:
    """How to reach one provider (a `[providers.NAME]` table)."""

    kind: str = ""
    """Which adapter: openai, azure, gemini, stability, openai-compatible, local.
    Defaults to the table's name, so `[providers.openai]` needs none."""
    keys: tuple[ApiKey, ...] = ()
    """The provider's API keys (from api_key / api_key_env / api_key_file, or a `keys`
    array of tables with value / value_env / value_file and weight)."""
    base_url: str | None = None
    """Override of the provider's API root, e.g. a proxy or a compatible server."""
    timeout_seconds: float | None = None
    """Per-attempt timeout for this provider; the server-wide one when unset."""
    max_concurrency: int | None = None
    """Calls to this provider in flight at once (across jobs); unlimited when unset."""
    api_version: str | None = None
    """Azure OpenAI's api-version query parameter."""
    deployments: Mapping[str, str] = field(default_factory=dict)
    """Azure OpenAI: model name -> deployment name; a model not listed is its own deployment."""
    operations: tuple[str, ...] = ()
    """openai-compatible: the operations the server offers (image_edit, image_generation,
    embedding, image_variation); empty = all of them."""
    max_response_bytes: int = 128 * MB
    """Largest answer read from this provider; a bigger one fails the attempt (never read whole)."""

    @property
    def api_key(self) -> str | None:
        """The first key (for providers that take one)."""
        return self.keys[0].value if self.keys else None


@dataclass(frozen=True)
class VirtualKey:
    """A caller's key (CONTRACT section 4). Jobs store only the id."""

    id: str
    value: str
    """The secret the caller presents, e.g. `sk-bf-...`."""
    allowed_models: tuple[str, ...] = ()
    """`provider/model` entries (or `provider/*`) this key may use; empty = any."""


@dataclass(frozen=True)
class RetrySettings:
    max_attempts: int = 3
    """Attempts per model (the first call included) before moving to the next."""
    base_delay_seconds: float = 0.5
    """Delay before the first retry; doubles each retry, with jitter."""
    max_delay_seconds: float = 20.0
    """Cap on one backoff delay, and on a provider's Retry-After we will honour."""
    attempt_timeout_seconds: float = 120.0
    """Per-attempt timeout of a provider call."""


@dataclass(frozen=True)
class DispatcherSettings:
    concurrency: int = 8
    """Jobs one server runs at once; 0 makes an accept-only server that runs none."""
    lease_seconds: float = 30.0
    """How long a claim holds without renewal; renewed every third of it."""
    poll_interval_seconds: float = 1.0
    """Safety poll for new jobs when no wake-up arrives."""
    sweep_interval_seconds: float = 30.0
    """How often expired leases are reaped and expired jobs deleted."""
    max_job_attempts: int = 3
    """Claims of one job (crashes included) before it fails for good."""
    shutdown_grace_seconds: float = 10.0
    """On SIGTERM, how long running jobs may finish before they are released."""
    job_deadline_seconds: float = 3600.0
    """Overall bound on one run of a job: every attempt, wait and fallback together."""


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    data_dir: Path = Path("data")
    """Holds the SQLite database and upload staging files."""
    default_ttl_seconds: int = 3600
    """Result TTL when the caller sets none (or an invalid or negative one)."""
    max_ttl_seconds: int = 7 * 24 * 3600
    """Cap on any requested TTL."""
    database_url: str | None = None
    """PostgreSQL DSN (postgresql://user@host/db; or database_url_env / _file). When set,
    jobs live in PostgreSQL and several replicas may share them; else SQLite in data_dir."""
    database_pool_size: int = 10
    """PostgreSQL connections one replica keeps at most (plus one for LISTEN)."""
    migrate_on_start: bool = True
    """Apply pending PostgreSQL schema migrations at start (safe with many replicas)."""
    sqlite_synchronous: str = "NORMAL"
    """SQLite's synchronous setting (WAL). NORMAL: a submit survives a crash or kill of the
    process; the last commits before a power loss may be lost. FULL: fsync on every commit."""
    max_image_bytes: int = 50 * MB
    """Per image (and mask) size limit."""
    max_images: int = 16
    max_image_pixels: int = 64 * 1024 * 1024
    """Width x height above which an image is refused as a decompression bomb."""
    max_message_bytes: int = 64 * MB
    """Largest unary gRPC message; bigger uploads use UploadImageEditJob."""
    max_fallbacks: int = 4
    """Most fallback models one request may name."""
    image_pixel_budget: int = 64 * 1024 * 1024
    """Decoded pixels being checked or processed at once in this process (every request and
    local job together); work beyond it waits its turn. At least max_image_pixels."""
    local_max_pixels: int = 16 * 1024 * 1024
    """The local provider works on a copy of each input reduced to at most this many pixels."""
    max_embedding_tokens: int = 300_000
    """All token ids of one embeddings request together."""
    max_embedding_chars: int = 2_000_000
    """All characters of one embeddings request's texts together."""
    upload_idle_timeout_seconds: float = 30.0
    """A gRPC upload stream that sends nothing for this long is ended (DEADLINE_EXCEEDED)."""
    max_staged_upload_bytes: int = 1024 * MB
    """Bytes held by uploads in progress in this process; a new upload past it is refused."""
    require_virtual_key: bool = False
    """Refuse requests that carry no virtual key."""
    url_signing_secret: str | None = None
    """HMAC key for result image capabilities; generated in data_dir when unset.
    Set it (the same on every replica) when several servers share a store."""
    virtual_keys: tuple[VirtualKey, ...] = ()
    providers: Mapping[str, ProviderSettings] = field(default_factory=dict)
    retry: RetrySettings = field(default_factory=RetrySettings)
    dispatcher: DispatcherSettings = field(default_factory=DispatcherSettings)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "asyncgate.sqlite3"

    @property
    def staging_dir(self) -> Path:
        return self.data_dir / "staging"


# Provider environment variables understood out of the box.
PROVIDER_ENV: dict[str, dict[str, str]] = {
    "openai": {"api_key": "OPENAI_API_KEY", "base_url": "OPENAI_BASE_URL"},
    "azure": {
        "api_key": "AZURE_OPENAI_API_KEY",
        "base_url": "AZURE_OPENAI_ENDPOINT",
        "api_version": "OPENAI_API_VERSION",
    },
    "gemini": {"api_key": "GEMINI_API_KEY"},
    "stability": {"api_key": "STABILITY_API_KEY"},
}
_PROVIDER_SETTINGS = {
    "kind",
    "api_key",
    "api_key_env",
    "api_key_file",
    "keys",
    "base_url",
    "endpoint",
    "timeout_seconds",
    "max_concurrency",
    "api_version",
    "deployments",
    "operations",
    "max_response_bytes",
}


class ConfigError(ValueError):
    pass


def _secret(table: Mapping[str, Any], name: str, env: Mapping[str, str]) -> str | None:
    """A secret given inline, by environment variable (`name_env`) or by file (`name_file`)."""
    if table.get(name) is not None:
        return str(table[name])
    if (var := table.get(f"{name}_env")) is not None:
        return env.get(str(var))
    if (path := table.get(f"{name}_file")) is not None:
        return Path(str(path)).read_text().strip()
    return None


def _dataclass_from(cls: type[Any], table: Mapping[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    return cls(**table)


def _providers(table: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, ProviderSettings]:
    providers: dict[str, ProviderSettings] = {}
    for name in set(table) | set(PROVIDER_ENV):
        entry = dict(table.get(name, {}))
        where = f"providers.{name}"
        extra = set(entry) - _PROVIDER_SETTINGS
        if extra:
            raise ConfigError(f"{where}: unknown setting(s) {', '.join(sorted(extra))}")
        kind = str(entry.get("kind", name))
        env_names = PROVIDER_ENV.get(kind, {}) if kind == name else {}  # env vars serve the default table
        keys = _api_keys(entry, env, env_names.get("api_key"), where)
        base_url = entry.get("base_url") or entry.get("endpoint") or env.get(env_names.get("base_url", ""))
        providers[name] = ProviderSettings(
            kind=kind,
            keys=keys,
            base_url=base_url,
            timeout_seconds=entry.get("timeout_seconds"),
            max_concurrency=entry.get("max_concurrency"),
            api_version=entry.get("api_version") or env.get(env_names.get("api_version", "")),
            deployments=dict(entry.get("deployments", {})),
            operations=tuple(entry.get("operations", ())),
            **({"max_response_bytes": entry["max_response_bytes"]} if "max_response_bytes" in entry else {}),
        )
    return providers


def _api_keys(
    entry: Mapping[str, Any], env: Mapping[str, str], env_var: str | None, where: str
) -> tuple[ApiKey, ...]:
    keys = []
    if (single := _secret(entry, "api_key", env)) is not None:
        keys.append(ApiKey(single))
    for i, key in enumerate(entry.get("keys", [])):
        value = _secret(key, "value", env)
        if not value:
            raise ConfigError(f"{where}.keys[{i}]: value (or value_env / value_file) is required")
        weight = float(key.get("weight", 1.0))
        if weight <= 0:
            raise ConfigError(f"{where}.keys[{i}]: weight must be positive")
        keys.append(ApiKey(value, weight))
    if not keys and env_var and env.get(env_var):
        keys.append(ApiKey(env[env_var]))
    return tuple(keys)


def _virtual_keys(entries: list[Mapping[str, Any]], env: Mapping[str, str]) -> tuple[VirtualKey, ...]:
    keys = []
    for i, entry in enumerate(entries):
        value = _secret(entry, "value", env)
        if not entry.get("id") or not value:
            raise ConfigError(f"virtual_keys[{i}]: id and value (or value_env / value_file) are required")
        keys.append(VirtualKey(str(entry["id"]), value, tuple(entry.get("allowed_models", ()))))
    if len({k.id for k in keys}) != len(keys) or len({k.value for k in keys}) != len(keys):
        raise ConfigError("virtual_keys: ids and values must be unique")
    return tuple(keys)


def config_from_mapping(doc: Mapping[str, Any], env: Mapping[str, str] | None = None) -> ServerConfig:
    """Build a ServerConfig from a parsed TOML document (see README for the keys)."""
    env = os.environ if env is None else env
    doc = dict(doc)
    nested = {
        "retry": _dataclass_from(RetrySettings, doc.pop("retry", {}), "retry"),
        "dispatcher": _dataclass_from(DispatcherSettings, doc.pop("dispatcher", {}), "dispatcher"),
        "providers": _providers(doc.pop("providers", {}), env),
        "virtual_keys": _virtual_keys(doc.pop("virtual_keys", []), env),
    }
    secrets = {name: _secret(doc, name, env) for name in ("url_signing_secret", "database_url")}
    for name in secrets:
        for key in (name, f"{name}_env", f"{name}_file"):
            doc.pop(key, None)
    if "data_dir" in doc:
        doc["data_dir"] = Path(doc["data_dir"])
    config: ServerConfig = _dataclass_from(ServerConfig, doc, "server")
    if config.sqlite_synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
        raise ConfigError("sqlite_synchronous must be NORMAL, FULL or EXTRA")
    return replace(
        config,
        url_signing_secret=secrets["url_signing_secret"],
        database_url=secrets["database_url"],
        **nested,
    )


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> ServerConfig:
    doc: dict[str, Any] = {}
    if path is not None:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    return config_from_mapping(doc, env)
