"""Every setting's type and range, checked when the configuration is loaded.

Types come from the dataclass annotations in config.py: a TOML value is read as its
field's annotation says (an integer field takes no float, string or boolean), so a field
added later is type-checked with no change here. Ranges live in RULES, keyed by setting
path: `port`, `dispatcher.lease_seconds`, `providers.*.timeout_seconds` (`*` stands for
any provider name or list index). A field without a rule fails a test
(tests/unit/test_config_rules.py) until one is added; `ANY` says "no constraint" on purpose.

This module imports nothing of the project, so config.py can use it without a cycle.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """A setting that is missing, of the wrong type or out of range; the message names it."""


# ---------------------------------------------------------------------------------------
# Types: a raw TOML value read as its field's annotation says.


def toml_type(value: object) -> str:
    """The TOML name of a parsed value's type, for messages."""
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}
    return names.get(type(value), type(value).__name__)


def show(value: object) -> str:
    """A value as the error message shows it (TOML-like; paths and strings quoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, Path)):
        return repr(str(value))
    if isinstance(value, tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return str(value)


def wrong_type(path: str, want: str, value: object) -> ConfigError:
    """Shows a wrong number or boolean; of a string, array or table only its type, since a
    secret put in the wrong place would otherwise end up in the message."""
    shown = f" {show(value)}" if isinstance(value, (bool, int, float)) else ""
    return ConfigError(f"{path}: must be {want}, got {toml_type(value)}{shown}")


def _optional_of(hint: Any) -> Any | None:
    """T for `T | None`, else None."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0]
    return None


_SIMPLE = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", Path: "a path"}


def describe(hint: Any) -> str:
    """What a TOML value for `hint` must be ("an integer", "an array of strings"...).
    TypeError for an annotation the loader cannot read: a test calls it on every field."""
    if (inner := _optional_of(hint)) is not None:
        return describe(inner)  # TOML has no null: an optional setting is simply left out
    if hint in _SIMPLE:
        return _SIMPLE[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and args[0] in _SIMPLE:
        return f"an array of {describe(args[0]).partition(' ')[2]}s"
    if origin in (Mapping, dict) and len(args) == 2 and args[0] is str and args[1] in _SIMPLE:
        return f"a table of {describe(args[1]).partition(' ')[2]}s"
    if dataclasses.is_dataclass(hint):
        return "a table"
    raise TypeError(f"no TOML reading for the annotation {hint!r}")


def read_value(value: object, hint: Any, path: str) -> Any:
    """`value` (as tomllib parsed it) checked against `hint` and converted (list -> tuple,
    string -> Path); ConfigError naming `path` when it does not fit."""
    if (inner := _optional_of(hint)) is not None:
        return read_value(value, inner, path)
    want = describe(hint)
    if hint is bool:
        if not isinstance(value, bool):
            raise wrong_type(path, want, value)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong_type(path, want, value)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong_type(path, want, value)
        if not math.isfinite(value):  # TOML allows inf and nan
            raise wrong_type(path, "a finite number", value)
        return value
    if hint is str or hint is Path:
        if not isinstance(value, str):
            raise wrong_type(path, want, value)
        if hint is Path:
            if not value:
                raise ConfigError(f"{path}: must not be empty")
            return Path(value)
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        if not isinstance(value, list):
            raise wrong_type(path, want, value)
        return tuple(read_value(item, args[0], f"{path}[{i}]") for i, item in enumerate(value))
    if origin in (Mapping, dict):
        if not isinstance(value, dict):
            raise wrong_type(path, want, value)
        return {key: read_value(item, args[1], f"{path}.{key}") for key, item in value.items()}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return hint(**read_fields(hint, table_at(value, path), path))
    raise TypeError(f"{path}: no TOML reading for the annotation {hint!r}")


def table_at(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise wrong_type(path, "a table", value)
    return value


def join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def refuse_unknown(table: Mapping[str, Any], known: Collection[str], where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if not unknown:
        return
    message = f"{where + ': ' if where else ''}unknown setting(s) {', '.join(unknown)}"
    close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
    if len(unknown) == 1 and close:
        message += f" (did you mean {close[0]}?)"
    raise ConfigError(message)


def read_fields(
    cls: type[Any], table: Mapping[str, Any], where: str, handled: Collection[str] = ()
) -> dict[str, Any]:
    """Constructor arguments for dataclass `cls` from a TOML table, each value read as its
    field's annotation says. Keys in `handled` are the caller's (secrets, aliases); any
    other key that is not a field is refused."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    refuse_unknown(table, names | set(handled), where)
    return {
        key: read_value(value, hints[key], join(where, key))
        for key, value in table.items()
        if key not in handled
    }


# ---------------------------------------------------------------------------------------
# Ranges: one rule per setting path, checked on the built configuration.


Check = tuple[Callable[[Any], bool], str]
"""A predicate and what it demands, completing "must ...": (lambda v: v > 0, "be > 0")."""


@dataclass(frozen=True)
class Rule:
    checks: tuple[Check, ...]
    per_item: bool = False
    """Applies to every entry of an array (or value of a table), each named in the message."""

    def problem(self, value: Any) -> str | None:
        for holds, want in self.checks:
            if not holds(value):
                return f"must {want}"
        return None


def rule(*checks: Check) -> Rule:
    return Rule(checks)


def each(item_rule: Rule) -> Rule:
    return Rule(item_rule.checks, per_item=True)


ANY = Rule(())
"""No constraint beyond the type (a boolean, free text)."""

TEN_YEARS = 10 * 366 * 24 * 3600
"""Upper bound on durations: larger ones overflow date arithmetic, and none is meant."""
LARGEST_GRPC_MESSAGE = 2**31 - 1
MIN_SECRET_BYTES = 32
"""Shortest URL-signing secret accepted: below this, result URLs could be forged."""
OPERATIONS = ("embedding", "image_edit", "image_generation", "image_variation")
"""What an openai-compatible provider may offer (RequestType's values; a test keeps them equal)."""
SECRET_SETTINGS = frozenset(
    {
        "url_signing_secret",
        "database_url",
        "virtual_keys.*.value",
        "providers.*.keys.*.value",
        "auth.jwt_secret",
        "webhooks.*.secrets",
        "blobs.s3.access_key_id",
        "blobs.s3.secret_access_key",
    }
)
"""Never shown in a message (a DSN may hold a password): only their length is."""


def at_least(low: int) -> Rule:
    return rule((lambda v: v >= low, f"be >= {low}"))


def between(low: int, high: int) -> Rule:
    return rule((lambda v: v >= low, f"be >= {low}"), (lambda v: v <= high, f"be <= {high}"))


_AT_MOST_TEN_YEARS: Check = (lambda v: v <= TEN_YEARS, f"be <= {TEN_YEARS} (ten years)")
POSITIVE_SECONDS = rule((lambda v: v > 0, "be > 0"), _AT_MOST_TEN_YEARS)
SECONDS_FROM_ZERO = rule((lambda v: v >= 0, "be >= 0"), _AT_MOST_TEN_YEARS)


def one_of(*choices: str) -> Rule:
    return rule((lambda v: v in choices, f"be one of {', '.join(choices)}"))


def one_of_ignoring_case(*choices: str) -> Rule:
    return rule((lambda v: v.upper() in choices, f"be one of {', '.join(choices)}"))


def _http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


WEBHOOK_EVENT_TYPES = ("async_job.completed", "async_job.failed", "async_job.cancelled")
WEBHOOK_SECRET_PREFIX = "whsec_"
MIN_WEBHOOK_SECRET_BYTES = 24
"""Shortest decoded webhook signing secret (Standard Webhooks asks for 24 to 64 bytes)."""
_WEBHOOK_NAME = re.compile(r"[a-z0-9_-]{1,64}")


def webhook_secret_bytes(secret: str) -> bytes | None:
    """The key of a `whsec_<base64>` secret (padding optional), or None when it is not one."""
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        return None
    encoded = secret[len(WEBHOOK_SECRET_PREFIX) :]
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _webhook_secret(value: str) -> bool:
    key = webhook_secret_bytes(value)
    return key is not None and len(key) >= MIN_WEBHOOK_SECRET_BYTES


def _model_pattern(value: str) -> bool:
    provider, slash, model = value.partition("/")
    return bool(provider and slash and model)


NOT_EMPTY = rule((lambda v: len(v) > 0, "not be empty"))
HTTP_URL = rule((_http_url, "be an http:// or https:// URL with a host"))
SECRET = rule((lambda v: len(v.encode()) >= MIN_SECRET_BYTES, f"be at least {MIN_SECRET_BYTES} bytes long"))
MODEL_PATTERN = rule((_model_pattern, "be provider/model or provider/* (e.g. openai/gpt-image-1)"))
WEBHOOK_NAME = rule((lambda v: _WEBHOOK_NAME.fullmatch(v) is not None, "be 1 to 64 of a-z, 0-9, _ and -"))
WEBHOOK_SECRET = rule(
    (
        _webhook_secret,
        f"be {WEBHOOK_SECRET_PREFIX}<base64> of at least {MIN_WEBHOOK_SECRET_BYTES} bytes decoded",
    )
)
WEBHOOK_EVENT = rule((lambda v: v in WEBHOOK_EVENT_TYPES, f"be one of {', '.join(WEBHOOK_EVENT_TYPES)}"))
OPERATION = rule((lambda v: v in OPERATIONS, f"be one of {', '.join(OPERATIONS)}"))

RULES: dict[str, Rule] = {
    "host": NOT_EMPTY,
    "port": between(0, 65535),
    "data_dir": ANY,  # a non-empty string, checked when read
    "default_ttl_seconds": POSITIVE_SECONDS,
    "max_ttl_seconds": POSITIVE_SECONDS,
    "database_url": NOT_EMPTY,
    "database_pool_size": at_least(1),
    "migrate_on_start": ANY,
    "sqlite_synchronous": one_of_ignoring_case("NORMAL", "FULL", "EXTRA"),
    "max_image_bytes": at_least(1),
    "max_images": at_least(1),
    "max_image_pixels": at_least(1),
    "max_message_bytes": between(1, LARGEST_GRPC_MESSAGE),
    "max_fallbacks": at_least(0),
    "image_pixel_budget": at_least(1),
    "local_max_pixels": at_least(1),
    "max_embedding_tokens": at_least(1),
    "max_embedding_chars": at_least(1),
    "upload_idle_timeout_seconds": POSITIVE_SECONDS,
    "max_staged_upload_bytes": at_least(1),
    "max_wait_seconds": POSITIVE_SECONDS,
    "require_virtual_key": ANY,
    "url_signing_secret": SECRET,
    "metrics_port": between(0, 65535),
    "virtual_keys.*.id": NOT_EMPTY,
    "virtual_keys.*.value": NOT_EMPTY,
    "virtual_keys.*.allowed_models": each(MODEL_PATTERN),
    "virtual_keys.*.max_jobs_in_flight": at_least(1),
    "virtual_keys.*.submits_per_minute": at_least(1),
    "virtual_keys.*.priority": between(0, 1000),
    "providers.*.kind": ANY,  # empty: the table's name (ProviderSettings.kind)
    "providers.*.keys.*.value": NOT_EMPTY,
    "providers.*.keys.*.weight": rule((lambda v: v > 0, "be > 0")),
    "providers.*.base_url": HTTP_URL,
    "providers.*.timeout_seconds": POSITIVE_SECONDS,
    "providers.*.max_concurrency": at_least(1),
    "providers.*.api_version": NOT_EMPTY,
    "providers.*.deployments": each(NOT_EMPTY),
    "providers.*.operations": each(OPERATION),
    "providers.*.max_response_bytes": at_least(1),
    "retry.max_attempts": at_least(1),
    "retry.base_delay_seconds": SECONDS_FROM_ZERO,
    "retry.max_delay_seconds": SECONDS_FROM_ZERO,
    "retry.attempt_timeout_seconds": POSITIVE_SECONDS,
    "dispatcher.concurrency": at_least(0),
    "dispatcher.lease_seconds": POSITIVE_SECONDS,
    "dispatcher.poll_interval_seconds": POSITIVE_SECONDS,
    "dispatcher.sweep_interval_seconds": POSITIVE_SECONDS,
    "dispatcher.webhook_history_seconds": POSITIVE_SECONDS,
    "dispatcher.max_job_attempts": at_least(1),
    "dispatcher.shutdown_grace_seconds": SECONDS_FROM_ZERO,
    "dispatcher.job_deadline_seconds": POSITIVE_SECONDS,
    "dispatcher.fair_share": ANY,
    "auth.jwt_secret": SECRET,
    "auth.jwks_file": ANY,  # read (and its keys checked) when the server starts
    "auth.issuer": NOT_EMPTY,
    "auth.audience": NOT_EMPTY,
    "webhooks.*.name": WEBHOOK_NAME,
    "webhooks.*.url": HTTP_URL,
    "webhooks.*.secrets": each(WEBHOOK_SECRET),
    "webhooks.*.events": each(WEBHOOK_EVENT),
    "webhooks.*.enabled": ANY,
    "webhooks.*.timeout_seconds": POSITIVE_SECONDS,
    "webhooks.*.max_concurrency": at_least(1),
    "webhooks.*.max_result_bytes": at_least(0),
    "webhooks.*.retry_schedule_seconds": each(SECONDS_FROM_ZERO),
    "blobs.store": one_of("auto", "directory", "s3", "database"),
    "blobs.directory": ANY,  # a non-empty string, checked when read
    "blobs.fsync": ANY,
    "blobs.orphan_sweep_interval_seconds": POSITIVE_SECONDS,
    "blobs.s3.bucket": ANY,  # required with store = "s3": see the relations
    "blobs.s3.endpoint_url": HTTP_URL,
    "blobs.s3.region": NOT_EMPTY,
    "blobs.s3.access_key_id": NOT_EMPTY,
    "blobs.s3.secret_access_key": NOT_EMPTY,
    "blobs.s3.key_prefix": rule((lambda v: v == "" or v.endswith("/"), 'be empty or end with "/"')),
    "blobs.s3.create_bucket": ANY,
    "blobs.s3.addressing_style": one_of("path", "virtual"),
    "blobs.s3.presign_urls": ANY,
    "blobs.s3.public_endpoint_url": HTTP_URL,
}


def _children(hint: Any) -> Any | None:
    """The dataclass a field nests: itself, `tuple[D, ...]` or `Mapping[str, D]`; else None."""
    if dataclasses.is_dataclass(hint):
        return hint
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and dataclasses.is_dataclass(args[0]):
        return args[0]
    if origin in (Mapping, dict) and len(args) == 2 and dataclasses.is_dataclass(args[1]):
        return args[1]
    return None


def setting_paths(cls: type[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every leaf setting of dataclass `cls` as (rule key, annotation): `retry.max_attempts`,
    `providers.*.keys.*.weight`..."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        nested = _children(hint)
        if nested is None:
            yield prefix + f.name, hint
        elif nested is hint:
            yield from setting_paths(nested, f"{prefix}{f.name}.")
        else:
            yield from setting_paths(nested, f"{prefix}{f.name}.*.")


def _check_leaf(value: Any, key: str, path: str) -> None:
    leaf_rule = RULES.get(key)
    if value is None or leaf_rule is None:
        return  # an unset optional setting; a setting without a rule fails test_config_rules
    items: list[tuple[str, Any]] = [(path, value)]
    if leaf_rule.per_item:
        entries = value.items() if isinstance(value, Mapping) else enumerate(value)
        items = [(f"{path}.{k}" if isinstance(value, Mapping) else f"{path}[{k}]", v) for k, v in entries]
    for where, item in items:
        if (problem := leaf_rule.problem(item)) is not None:
            shown = f"{len(str(item).encode())} bytes" if key in SECRET_SETTINGS else show(item)
            raise ConfigError(f"{where}: {problem}, got {shown}")


def check_ranges(obj: Any, rule_prefix: str = "", where: str = "") -> None:
    """Every leaf of the built configuration `obj` against its rule; ConfigError naming the
    first setting out of range (`dispatcher.lease_seconds: must be > 0, got 0`)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        key, path = rule_prefix + f.name, join(where, f.name)
        nested = _children(hint)
        if nested is None:
            _check_leaf(value, key, path)
        elif nested is hint:
            check_ranges(value, key + ".", path)
        elif isinstance(value, Mapping):
            for name, item in value.items():
                check_ranges(item, key + ".*.", f"{path}.{name}")
        else:
            for i, item in enumerate(value):
                check_ranges(item, key + ".*.", f"{path}[{i}]")


RELATIONS: tuple[tuple[str, str], ...] = (
    ("max_ttl_seconds", "default_ttl_seconds"),
    ("image_pixel_budget", "max_image_pixels"),
    ("max_staged_upload_bytes", "max_image_bytes"),
    ("retry.max_delay_seconds", "retry.base_delay_seconds"),
)
"""(a, b): setting a must be >= setting b."""


def _get(obj: Any, path: str) -> Any:
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


def check_relations(config: Any) -> None:
    """Settings that bound one another, e.g. the pixel budget holds the largest image."""
    blobs = getattr(config, "blobs", None)
    if blobs is not None and blobs.store == "s3" and not blobs.s3.bucket:
        raise ConfigError('blobs.s3.bucket: required with blobs.store = "s3"')
    for high, low in RELATIONS:
        if _get(config, high) < _get(config, low):
            raise ConfigError(f"{high}: must be >= {low} ({_get(config, low)}), got {_get(config, high)}")
