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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grpc_server.config_checks import (
    WEBHOOK_EVENT_TYPES,
    check_ranges,
    check_relations,
    join,
    read_fields,
    read_value,
    table_at,
    toml_type,
    wrong_type,
)
from grpc_server.config_checks import ConfigError as ConfigError  # raised by callers of this module too

MB = 1024 * 1024


@dataclass(frozen=True)
class ApiKey:
    """One provider key; several spread the load by weight."""

    value: str
    weight: float = 1.0
    """Share of the calls this key takes, relative to the provider's other keys."""


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
    """A caller's key (docs/rest-api.md §4). Jobs store only the id."""

    id: str
    """Stored with each job the key submits (never the secret); names the key in tokens' vk."""
    value: str
    """The secret the caller presents, e.g. `sk-bf-...`."""
    allowed_models: tuple[str, ...] = ()
    """`provider/model` entries (or `provider/*`) this key may use; empty = any."""
    max_jobs_in_flight: int | None = None
    """Jobs of this key pending or processing at once, across replicas; a submit over it is
    refused (429 too_many_jobs_in_flight). Unset: no limit."""
    submits_per_minute: int | None = None
    """Jobs this key may submit in any 60 seconds, across replicas; a submit over it is refused
    (429 rate_limited, Retry-After: when the oldest of them leaves the minute). Unset: no limit."""
    priority: int = 0
    """Claims serve keys of a higher priority first; keys of equal priority take turns."""


@dataclass(frozen=True)
class AuthSettings:
    """Bearer JWTs (an `[auth]` table): a token with claim `vk` acts as that virtual key, one
    with `role = "admin"` may read any job. Off while neither jwt_secret nor jwks_file is set."""

    jwt_secret: str | None = None
    """HS256 signing secret (its UTF-8 bytes, at least 32); from jwt_secret_env / _file."""
    jwks_file: Path | None = None
    """A JWKS file with the public keys that verify RS256 and ES256 tokens (by `kid`)."""
    issuer: str | None = None
    """When set, a token's `iss` must equal it."""
    audience: str | None = None
    """When set, a token's `aud` must name it."""


WEBHOOK_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
"""Standard Webhooks' suggested delays after the immediate first attempt: 5 s, 5 min, 30 min,
2 h, 5 h, 10 h, 10 h (about 27.6 hours in all)."""


@dataclass(frozen=True)
class WebhookEndpoint:
    """A receiver of signed job events (a `[[webhooks]]` table); a job names it by `name`."""

    name: str
    """How a job names the endpoint; unique, 1 to 64 of a-z, 0-9, _ and -."""
    url: str
    """Where events are POSTed (http:// or https://); a redirect is never followed."""
    secrets: tuple[str, ...]
    """Signing secrets `whsec_<base64>` (at least 24 bytes decoded): one from secret /
    secret_env / secret_file, or several (a rotation: one signature each) from secrets /
    secrets_env / secrets_file."""
    events: tuple[str, ...] = WEBHOOK_EVENT_TYPES
    """The event types sent: async_job.completed, async_job.failed, async_job.cancelled."""
    enabled: bool = True
    """A disabled endpoint is refused when a job names it and receives nothing."""
    timeout_seconds: float = 10.0
    """One delivery attempt, from connecting until the answer is read."""
    max_concurrency: int = 8
    """Deliveries to this endpoint in flight at once, per server."""
    max_result_bytes: int = 256 * 1024
    """A job's result whose JSON is larger is left out of the event (`result_omitted: true`)."""
    retry_schedule_seconds: tuple[float, ...] = WEBHOOK_RETRY_SCHEDULE
    """Delays before each retry after the first attempt fails (jittered; a longer Retry-After
    is honoured up to the largest); empty: no retries."""


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
    concurrency: int = 256
    """Jobs one server runs at once; 0 makes an accept-only server that runs none. Running jobs
    mostly wait on providers, about 20 KB of memory each (`python -m bench --only inflight`)."""
    lease_seconds: float = 30.0
    """How long a claim holds without renewal; renewed every third of it."""
    poll_interval_seconds: float = 1.0
    """Safety poll for new jobs when no wake-up arrives."""
    sweep_interval_seconds: float = 30.0
    """How often expired leases are reaped and expired jobs deleted."""
    webhook_history_seconds: float = 7 * 24 * 3600.0
    """How long a webhook event is kept once delivered or given up (its attempts with it, for
    the deliveries listing and redelivery); the sweeper then deletes it. Pending events are
    kept however old."""
    max_job_attempts: int = 3
    """Claims of one job (crashes included) before it fails for good."""
    shutdown_grace_seconds: float = 10.0
    """On SIGTERM, how long running jobs may finish before they are released."""
    job_deadline_seconds: float = 3600.0
    """Overall bound on one run of a job: every attempt, wait and fallback together."""
    fair_share: bool = True
    """Claims take turns between virtual keys (higher priority first; keyless jobs count as one
    key), so one key's backlog does not hold up another's; false: strictly oldest first."""


@dataclass(frozen=True)
class S3BlobSettings:
    """An S3-compatible bucket for job files (`[blobs.s3]`, with `[blobs] store = "s3"`)."""

    bucket: str = ""
    """The bucket's name (required with store = "s3")."""
    endpoint_url: str | None = None
    """The S3 API's URL for an S3-compatible server (MinIO, SeaweedFS, Ceph, R2...); unset: AWS."""
    region: str = "us-east-1"
    access_key_id: str | None = None
    """The access key (or access_key_id_env / _file); with secret_access_key, or neither: the
    default AWS credential chain (environment, profile, instance role)."""
    secret_access_key: str | None = None
    """Its secret (or secret_access_key_env / _file)."""
    key_prefix: str = ""
    """Prepended to every key in the bucket ("prod/": ends with "/"), so that deployments can
    share one bucket."""
    create_bucket: bool = False
    """Create the bucket at start when it is missing (else a missing bucket stops the start)."""
    addressing_style: str = "path"
    """"path" (bucket in the path: what S3-compatible servers expect) or "virtual" (in the host)."""
    presign_urls: bool = False
    """Result image URLs point at the bucket (pre-signed, valid until the job expires, at most 7
    days) instead of at the bridge; only when clients can reach the bucket."""
    public_endpoint_url: str | None = None
    """The bucket's URL as clients reach it, for pre-signed URLs; unset: endpoint_url."""


@dataclass(frozen=True)
class BlobSettings:
    """Where job files (input images, outputs, vectors) are kept (`[blobs]`)."""

    store: str = "auto"
    """"directory" (files under `directory`), "s3" (a bucket, `[blobs.s3]`), "database" (rows of
    the job database, as before) or "auto": a directory with the embedded SQLite store, the
    database with PostgreSQL (several replicas cannot share a local directory)."""
    directory: Path | None = None
    """The directory store's root; unset: data_dir/blobs. With PostgreSQL, only a directory every
    replica shares (a network filesystem) works."""
    fsync: bool | None = None
    """Sync each file (and its directory) to disk before its job's row commits. Unset: when the job
    store syncs its commits (PostgreSQL; SQLite with sqlite_synchronous FULL or EXTRA)."""
    orphan_sweep_interval_seconds: float = 3600.0
    """How often files no job references (a create or a worker that died between its file and its
    row) are looked for and deleted: it lists every file in the store."""
    s3: S3BlobSettings = field(default_factory=S3BlobSettings)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    """Address the gRPC server listens on."""
    port: int = 50051
    """Port the gRPC server listens on (0: any free port)."""
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
    """Images one edit may carry."""
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
    max_wait_seconds: float = 60.0
    """Longest one WaitJob call waits (a longer or unset timeout is cut to it); the call then
    returns the job as it is, still running, and the client calls again."""
    require_virtual_key: bool = False
    """Refuse requests that carry no virtual key."""
    metrics_port: int | None = None
    """Port of the server's Prometheus `/metrics` (on `host`; 0: any free port). Unset: not
    served (`python -m asyncgate` serves the server's metrics on the bridge's /metrics)."""
    url_signing_secret: str | None = None
    """HMAC key for result image capabilities; generated in data_dir when unset.
    Set it (the same on every replica) when several servers share a store."""
    virtual_keys: tuple[VirtualKey, ...] = ()
    providers: Mapping[str, ProviderSettings] = field(default_factory=dict)
    retry: RetrySettings = field(default_factory=RetrySettings)
    dispatcher: DispatcherSettings = field(default_factory=DispatcherSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    webhooks: tuple[WebhookEndpoint, ...] = ()
    blobs: BlobSettings = field(default_factory=BlobSettings)

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
DEFAULT_SECRET_ENV = {"database_url": "ASYNCGATE_DATABASE_URL", "url_signing_secret": "ASYNCGATE_URL_SECRET"}
"""Read when the setting is not configured at all (neither inline, nor `_env`, nor `_file`)."""


def _sources(name: str) -> tuple[str, str, str]:
    """The keys that may give secret `name`: inline, by environment variable, by file."""
    return (name, f"{name}_env", f"{name}_file")


def _secret(table: Mapping[str, Any], name: str, env: Mapping[str, str], where: str) -> str | None:
    """A secret given inline, by environment variable (`name_env`) or by file (`name_file`);
    None when none is given. A variable that is unset or empty, or a file that cannot be read
    or is empty, is an error: silently running without the secret is worse than not starting.
    Messages never show the secret itself."""
    given = [key for key in _sources(name) if key in table]
    if len(given) > 1:
        raise ConfigError(f"{join(where, given[0])}: give only one of {', '.join(given)}")
    if not given:
        return None
    key = given[0]
    path, ref = join(where, key), table[key]
    if not isinstance(ref, str):
        raise ConfigError(f"{path}: must be a string, got {toml_type(ref)}")
    if key == name:
        value, source = ref, "it"
    elif key.endswith("_env"):
        if ref not in env:
            raise ConfigError(f"{path}: environment variable {ref} is not set")
        value, source = env[ref], f"environment variable {ref}"
    else:
        try:
            value = Path(ref).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read {ref}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: {ref} is not UTF-8 text") from None
        source = f"file {ref}"
    if not value.strip():
        raise ConfigError(f"{path}: {source} is empty")
    return value


def _providers(value: object, env: Mapping[str, str]) -> dict[str, ProviderSettings]:
    table = table_at(value, "providers")
    providers: dict[str, ProviderSettings] = {}
    for name in [*table, *(n for n in PROVIDER_ENV if n not in table)]:
        where = f"providers.{name}"
        if not name or "/" in name:
            raise ConfigError(f"{where}: a provider name must be non-empty and hold no '/'")
        entry = table_at(table.get(name, {}), where)
        settings = read_fields(
            ProviderSettings, entry, where, handled=("keys", "endpoint", *_sources("api_key"))
        )
        if "endpoint" in entry:  # Azure's word for base_url
            if "base_url" in entry:
                raise ConfigError(f"{where}: give base_url or endpoint, not both")
            settings["base_url"] = read_value(entry["endpoint"], str, f"{where}.endpoint")
        kind = settings.setdefault("kind", name)
        env_names = PROVIDER_ENV.get(kind, {}) if kind == name else {}  # env vars serve the default table
        settings["keys"] = _api_keys(entry, env, env_names.get("api_key"), where)
        for setting in ("base_url", "api_version"):
            if setting not in settings and (var := env_names.get(setting)) and env.get(var):
                settings[setting] = env[var]
        providers[name] = ProviderSettings(**settings)
    return providers


def _api_keys(
    entry: Mapping[str, Any], env: Mapping[str, str], env_var: str | None, where: str
) -> tuple[ApiKey, ...]:
    keys = []
    if (single := _secret(entry, "api_key", env, where)) is not None:
        keys.append(ApiKey(single))
    listed = entry.get("keys", [])
    if not isinstance(listed, list):
        raise wrong_type(f"{where}.keys", "an array of tables", listed)
    for i, item in enumerate(listed):
        at = f"{where}.keys[{i}]"
        table = table_at(item, at)
        settings = read_fields(ApiKey, table, at, handled=_sources("value"))
        value = _secret(table, "value", env, at)
        if value is None:
            raise ConfigError(f"{at}: value (or value_env / value_file) is required")
        keys.append(ApiKey(value=value, **settings))
    if not keys and env_var and env.get(env_var):
        keys.append(ApiKey(env[env_var]))
    return tuple(keys)


def _virtual_keys(value: object, env: Mapping[str, str]) -> tuple[VirtualKey, ...]:
    if not isinstance(value, list):
        raise wrong_type("virtual_keys", "an array of tables ([[virtual_keys]])", value)
    keys = []
    for i, item in enumerate(value):
        at = f"virtual_keys[{i}]"
        table = table_at(item, at)
        settings = read_fields(VirtualKey, table, at, handled=_sources("value"))
        secret = _secret(table, "value", env, at)
        if "id" not in settings or secret is None:
            raise ConfigError(f"{at}: id and value (or value_env / value_file) are required")
        keys.append(VirtualKey(value=secret, **settings))
    if len({k.id for k in keys}) != len(keys) or len({k.value for k in keys}) != len(keys):
        raise ConfigError("virtual_keys: ids and values must be unique")
    return tuple(keys)


def _auth(value: object, env: Mapping[str, str]) -> AuthSettings:
    table = table_at(value, "auth")
    settings = read_fields(AuthSettings, table, "auth", handled=_sources("jwt_secret"))
    return AuthSettings(jwt_secret=_secret(table, "jwt_secret", env, "auth"), **settings)


def _webhook_secrets(table: Mapping[str, Any], env: Mapping[str, str], where: str) -> tuple[str, ...]:
    """One secret (secret / secret_env / secret_file) or several (the same names plural, each
    an array), read like every secret; exactly one of the six keys."""
    given = [key for key in (*_sources("secret"), *_sources("secrets")) if key in table]
    if not given:
        sources = "secret_env / secret_file / secrets / secrets_env / secrets_file"
        raise ConfigError(f"{where}: secret (or {sources}) is required")
    if len(given) > 1:
        raise ConfigError(f"{join(where, given[0])}: give only one of {', '.join(given)}")
    key = given[0]
    if not key.startswith("secrets"):
        value = _secret(table, "secret", env, where)
        return () if value is None else (value,)
    refs = table[key]
    if not isinstance(refs, list):
        raise wrong_type(join(where, key), "an array of strings", refs)
    single = key.replace("secrets", "secret")
    values = []
    for i, ref in enumerate(refs):
        try:  # read as a lone `secret*` key, the message then naming the array entry
            value = _secret({single: ref}, "secret", env, "")
        except ConfigError as problem:
            raise ConfigError(f"{join(where, key)}[{i}]{str(problem)[len(single) :]}") from None
        values.append(value or "")
    if not values:
        raise ConfigError(f"{join(where, key)}: must name at least one secret")
    return tuple(values)


def _webhooks(value: object, env: Mapping[str, str]) -> tuple[WebhookEndpoint, ...]:
    if not isinstance(value, list):
        raise wrong_type("webhooks", "an array of tables ([[webhooks]])", value)
    endpoints = []
    for i, item in enumerate(value):
        at = f"webhooks[{i}]"
        table = table_at(item, at)
        settings = read_fields(
            WebhookEndpoint, table, at, handled=(*_sources("secret"), *_sources("secrets"))
        )
        for required in ("name", "url"):
            if required not in settings:
                raise ConfigError(f"{at}: {required} is required")
        if settings.get("events") == ():
            raise ConfigError(f"{at}.events: must name at least one event (leave it out for all)")
        secrets = _webhook_secrets(table, env, at)
        endpoints.append(WebhookEndpoint(secrets=secrets, **settings))
    names = [endpoint.name for endpoint in endpoints]
    if duplicate := next((name for name in names if names.count(name) > 1), None):
        raise ConfigError(f"webhooks: the name {duplicate!r} is given twice; names must be unique")
    return tuple(endpoints)


def _blobs(value: object, env: Mapping[str, str]) -> BlobSettings:
    table = table_at(value, "blobs")
    settings = read_fields(BlobSettings, table, "blobs", handled=("s3",))
    s3_table = table_at(table.get("s3", {}), "blobs.s3")
    credentials = ("access_key_id", "secret_access_key")
    s3 = read_fields(
        S3BlobSettings, s3_table, "blobs.s3", handled=[key for name in credentials for key in _sources(name)]
    )
    for name in credentials:
        s3[name] = _secret(s3_table, name, env, "blobs.s3")
    return BlobSettings(**settings, s3=S3BlobSettings(**s3))


def config_from_mapping(doc: Mapping[str, Any], env: Mapping[str, str] | None = None) -> ServerConfig:
    """Build a ServerConfig from a parsed TOML document (examples/asyncgate.toml shows every
    key); ConfigError naming the setting for anything unknown, mistyped, out of range or missing."""
    env = os.environ if env is None else env
    secrets = ("database_url", "url_signing_secret")
    handled = (
        "providers",
        "virtual_keys",
        "auth",
        "webhooks",
        "blobs",
        *(key for name in secrets for key in _sources(name)),
    )
    settings = read_fields(ServerConfig, doc, "", handled)
    for name in secrets:
        settings[name] = _secret(doc, name, env, "")
        if settings[name] is None and (default := env.get(DEFAULT_SECRET_ENV[name], "")).strip():
            settings[name] = default
    config = ServerConfig(
        **settings,
        providers=_providers(doc.get("providers", {}), env),
        virtual_keys=_virtual_keys(doc.get("virtual_keys", []), env),
        auth=_auth(doc.get("auth", {}), env),
        webhooks=_webhooks(doc.get("webhooks", []), env),
        blobs=_blobs(doc.get("blobs", {}), env),
    )
    check_config(config)
    return config


def check_config(config: ServerConfig) -> None:
    """Every setting against its range and the settings that bound one another; also for a
    configuration changed after loading (command-line overrides)."""
    check_ranges(config)
    check_relations(config)


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> ServerConfig:
    doc: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as f:
                doc = tomllib.load(f)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return config_from_mapping(doc, env)
