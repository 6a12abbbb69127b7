"""asyncgate-cli's arguments: `submit <operation>` and `jobs <action>`, with the connection
options accepted before or after the command."""

from __future__ import annotations

import argparse
import json
import os

DEFAULT_URL = "http://127.0.0.1:8080"

EPILOG = """exit codes:
  0  done (for a wait: the job completed)
  1  the job failed or was cancelled
  2  usage error (bad arguments, unreadable file)
  3  refused by the server (invalid request, unknown job, key not allowed, conflict)
  4  the server could not be reached (after retries)
  5  --wait / jobs wait ran out of --timeout before the job ended
"""


def _label(value: str) -> tuple[str, str]:
    key, sep, label = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key, label


def _param(value: str) -> tuple[str, object]:
    """NAME=VALUE with a number or true/false read as such (JSON bodies check types)."""
    name, label = _label(value)
    try:
        parsed = json.loads(label)
    except ValueError:
        return name, label
    return name, parsed if isinstance(parsed, int | float | bool) else label


def _connection_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """--url/--grpc/--key/--token/--json; on the subcommands their defaults are suppressed so
    that a value given before the command is not overwritten."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    where = parser.add_argument_group("connection")
    target = where.add_mutually_exclusive_group()
    target.add_argument(
        "--url",
        default=default(None),
        help=f"the REST bridge (default: $ASYNCGATE_URL or {DEFAULT_URL})",
    )
    target.add_argument("--grpc", metavar="HOST:PORT", default=default(None), help="the gRPC server instead")
    where.add_argument("--key", default=default(None), help="virtual key (default: $ASYNCGATE_KEY)")
    where.add_argument("--token", default=default(None), help="bearer token (default: $ASYNCGATE_TOKEN)")
    where.add_argument("--json", action="store_true", default=default(False), help="print JSON, for scripts")


def _wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds to wait at most (default: no limit)"
    )
    parser.add_argument(
        "-o", "--output", help="write the result here (images: one file each; embeddings: a JSON file)"
    )


def _submit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="provider/model, e.g. local/pillow")
    parser.add_argument("--fallback", action="append", default=[], help="another provider/model (repeatable)")
    parser.add_argument(
        "--param", action="append", type=_param, default=[], metavar="NAME=VALUE", help="any other field"
    )
    parser.add_argument("--label", action="append", type=_label, default=[], metavar="KEY=VALUE")
    parser.add_argument("--idempotency-key", help="default: a new UUID (so a retried submit makes one job)")
    parser.add_argument("--ttl", type=int, help="seconds to keep the result")
    parser.add_argument("--wait", action="store_true", help="wait for the job to end")
    _wait_options(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asyncgate-cli",
        description="Submit and follow asyncgate jobs over REST or gRPC.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _connection_options(parser, suppress=False)
    groups = parser.add_subparsers(dest="group", required=True, metavar="{submit,jobs}")

    def leaf(
        sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
    ) -> argparse.ArgumentParser:
        command = sub.add_parser(
            name,
            help=text,
            description=text,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _connection_options(command, suppress=True)
        return command

    submit = groups.add_parser("submit", help="submit a job").add_subparsers(dest="command", required=True)
    edit = leaf(submit, "image-edit", "submit an image edit")
    edit.add_argument("--image", action="append", required=True, help="an input image (repeatable)")
    edit.add_argument("--mask", help="a PNG mask")
    edit.add_argument("--type", choices=["inpainting", "outpainting", "background_removal"])
    edit.add_argument("--prompt")
    edit.add_argument("--n", type=int)
    edit.add_argument("--size")
    _submit_options(edit)
    generation = leaf(submit, "image-generation", "submit an image generation")
    generation.add_argument("--prompt", required=True)
    generation.add_argument("--n", type=int)
    generation.add_argument("--size")
    generation.add_argument("--quality")
    _submit_options(generation)
    variation = leaf(submit, "image-variation", "submit an image variation")
    variation.add_argument("--image", required=True)
    variation.add_argument("--n", type=int)
    variation.add_argument("--size")
    _submit_options(variation)
    embeddings = leaf(submit, "embeddings", "submit an embeddings job")
    embeddings.add_argument("--input", action="append", required=True, help="a text (repeatable)")
    embeddings.add_argument("--dimensions", type=int)
    _submit_options(embeddings)

    jobs = groups.add_parser("jobs", help="look at and steer jobs").add_subparsers(
        dest="command", required=True
    )
    for name, text in (
        ("get", "show a job"),
        ("watch", "follow a job until it ends"),
        ("cancel", "cancel a job"),
        ("retry", "run a failed or cancelled job again"),
        ("delete", "delete a job and its results"),
    ):
        leaf(jobs, name, text).add_argument("job_id")
    wait = leaf(jobs, "wait", "wait for a job to end")
    wait.add_argument("job_id")
    _wait_options(wait)
    listing = leaf(jobs, "list", "list your jobs, newest first")
    listing.add_argument("--status", action="append", default=[])
    listing.add_argument("--type", choices=["image_edit", "image_generation", "image_variation", "embedding"])
    listing.add_argument("--label", action="append", type=_label, default=[], metavar="KEY=VALUE")
    listing.add_argument("--limit", type=int, default=20, help="at most this many jobs (default 20)")
    return parser


def connection(args: argparse.Namespace) -> dict[str, str | None]:
    """The AsyncClient arguments from the options and the environment."""
    key = args.key or os.environ.get("ASYNCGATE_KEY") or None
    token = args.token or os.environ.get("ASYNCGATE_TOKEN") or None
    if args.grpc:
        return {"grpc_target": args.grpc, "key": key, "bearer_token": token}
    url = args.url or os.environ.get("ASYNCGATE_URL") or DEFAULT_URL
    return {"url": url, "key": key, "bearer_token": token}
