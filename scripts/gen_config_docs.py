"""Write docs/configuration.md, the reference of every server setting, from grpc_server/config.py.

    python scripts/gen_config_docs.py           # rewrite the file
    python scripts/gen_config_docs.py --check   # exit 1 if the checked-in file is stale

Each setting's type and default come from its dataclass field, its rule from
config_checks.RULES, its description from the docstring under the field (read from the
source, since Python keeps no field docstrings at run time). tests/unit/test_config_docs.py
keeps the checked-in file current.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import itertools
import json
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from asyncgate.logs import CONTEXT_FIELDS, LOG_FORMAT_ENV, LOG_FORMATS  # noqa: E402
from grpc_server import config as config_module  # noqa: E402
from grpc_server.config_checks import ANY, RELATIONS, RULES, SECRET_SETTINGS, describe, show  # noqa: E402
from grpc_server.config_checks import _children as nested_dataclass  # noqa: E402

OUTPUT = REPO / "docs" / "configuration.md"

SECRET_FIELDS = {
    "database_url",
    "url_signing_secret",
    "virtual_keys.*.value",
    "providers.*.keys.*.value",
    "auth.jwt_secret",
    "webhooks.*.secrets",
    "blobs.s3.access_key_id",
    "blobs.s3.secret_access_key",
}
"""Settings that may also be given as NAME_env (an environment variable) or NAME_file (a file)."""

SECTIONS = {
    "": "Top level",
    "retry": "`[retry]`: retries of a provider call",
    "dispatcher": "`[dispatcher]`: running jobs",
    "virtual_keys": "`[[virtual_keys]]`: callers' keys",
    "providers": "`[providers.NAME]`: AI providers",
    "auth": "`[auth]`: bearer JWTs",
    "webhooks": "`[[webhooks]]`: signed webhook endpoints",
    "blobs": "`[blobs]` and `[blobs.s3]`: where job files are kept",
}


@dataclasses.dataclass(frozen=True)
class Setting:
    path: str
    type: str
    default: str
    rule: str
    description: str


def field_docstrings(source: str) -> dict[tuple[str, str], str]:
    """(class name, field name) -> the string literal right under the field, whitespace folded."""
    docs: dict[tuple[str, str], str] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        body = node.body
        for current, following in itertools.pairwise(body):
            if (
                isinstance(current, ast.AnnAssign)
                and isinstance(current.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[(node.name, current.target.id)] = " ".join(following.value.value.split())
    return docs


def _default(field: dataclasses.Field[Any]) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "required"
    return _toml(value)


def _toml(value: object) -> str:
    """A default as it would be written in the TOML file."""
    if value is None:
        return "unset"
    if isinstance(value, (str, Path)):
        return json.dumps(str(value))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return show(value)


def _rule(key: str) -> str:
    rule = RULES.get(key)
    if rule is None or rule is ANY:
        return "any value of its type"
    wants = " and ".join(want for _, want in rule.checks)
    return f"each entry must {wants}" if rule.per_item else f"must {wants}"


def settings(cls: type[Any], docs: dict[tuple[str, str], str], prefix: str = "") -> Iterator[Setting]:
    """Every leaf setting of `cls`, nested tables walked (`retry.max_attempts`, `providers.*.kind`)."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        hint, path = hints[field.name], prefix + field.name
        nested = nested_dataclass(hint)
        if nested is hint:
            yield from settings(nested, docs, path + ".")
        elif nested is not None:
            yield from settings(nested, docs, path + ".*.")
        else:
            yield Setting(
                path=path,
                type=describe(hint),
                default=_default(field),
                rule=_rule(path),
                description=docs.get((cls.__name__, field.name), ""),
            )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _notes(setting: Setting) -> str:
    notes = []
    if setting.path in SECRET_FIELDS:
        name = setting.path.rsplit(".", 1)[-1]
        notes.append(f"Secret: give `{name}_env` (a variable's name) or `{name}_file` (a path) instead.")
        if setting.path in config_module.DEFAULT_SECRET_ENV:
            notes.append(f"Read from `{config_module.DEFAULT_SECRET_ENV[setting.path]}` when none is given.")
    if setting.path in SECRET_SETTINGS:
        notes.append("Never shown in an error message.")
    bounds = [f"at least `{low}`" for high, low in RELATIONS if high == setting.path]
    bounds += [f"at most `{high}`" for high, low in RELATIONS if low == setting.path]
    if bounds:
        notes.append("Must be " + " and ".join(bounds) + ".")
    return " ".join(notes)


def render() -> str:
    docs = field_docstrings(Path(config_module.__file__).read_text())
    rows = list(settings(config_module.ServerConfig, docs))
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by `python scripts/gen_config_docs.py` from grpc_server/config.py and",
        "     grpc_server/config_checks.py; do not edit by hand (a test checks it is current). -->",
        "",
        "The gRPC server (`asyncgate-server`, `python -m grpc_server`, and the all-in-one",
        "`asyncgate`) reads one TOML file given with `--config`; every setting is optional.",
        "`examples/asyncgate.toml` shows them all with their defaults. A setting that is unknown,",
        "of the wrong type or outside its rule stops the server at start with one line naming",
        "it (`config error: dispatcher.lease_seconds: must be > 0, got 0`).",
        "",
        "`*` in a path stands for any name (`providers.openai.timeout_seconds`) or any entry of",
        "an array of tables (`[[virtual_keys]]`). The command-line flags `--grpc-host`,",
        "`--grpc-port` and `--data-dir` override `host`, `port` and `data_dir`.",
    ]
    for section, title in SECTIONS.items():
        members = [s for s in rows if (s.path.split(".")[0] if "." in s.path else "") == section]
        out += [
            "",
            f"## {title}",
            "",
            "| setting | type | default | rule | description |",
            "|---|---|---|---|---|",
        ]
        for s in members:
            text = " ".join(part for part in (s.description, _notes(s)) if part) or "-"
            cells = (f"`{s.path}`", s.type, f"`{s.default}`", s.rule, text)
            out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    out += [
        "",
        "## Provider keys and environment variables",
        "",
        "A provider table takes its key as `api_key`, `api_key_env` or `api_key_file`, or several",
        "as a `keys` array of tables (`value` / `value_env` / `value_file`, and `weight`).",
        "`endpoint` is accepted for `base_url` (Azure's word). The default provider tables read",
        "these environment variables when the file does not set the value:",
        "",
        "| provider | setting | environment variable |",
        "|---|---|---|",
    ]
    for provider, names in config_module.PROVIDER_ENV.items():
        for setting, variable in names.items():
            out.append(f"| `{provider}` | `{setting}` | `{variable}` |")
    out += [
        "",
        "## Logs",
        "",
        "Not a file setting: each entry point (`asyncgate`, `asyncgate-server`, `asyncgate-bridge`)",
        f"takes `--log-format {' | '.join(LOG_FORMATS)}` (default `text`, or the environment variable",
        f"`{LOG_FORMAT_ENV}`). `json` writes one JSON object per line with",
        "`time`, `level`, `logger`, `message` and, where known, "
        + ", ".join(f"`{name}`" for name in CONTEXT_FIELDS)
        + ".",
        "Virtual and provider keys, bearer tokens and result URL tokens are masked in both formats.",
    ]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the checked-in file is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(
                f"{OUTPUT.relative_to(REPO)} is stale: run python scripts/gen_config_docs.py", file=sys.stderr
            )
            raise SystemExit(1)
        return
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
