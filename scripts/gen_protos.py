"""Regenerate the Python code for protos/ (and check it is current).

    python scripts/gen_protos.py                    # write asyncgate/v1/*_pb2*.py(i)
    python scripts/gen_protos.py --check            # exit 1 when the checked-in code is stale
    python scripts/gen_protos.py --include-dir DIR  # the include files protos/ needs, for stubs
    python scripts/gen_protos.py --deps             # the same for buf, into build/protodeps

Stubs in another language (protoc, grpc_tools, Node's proto-loader, Go) need the
files protos/ imports: `--include-dir DIR` writes google/api/*.proto and
google/rpc/*.proto (from the installed googleapis-common-protos, Apache-2.0) and the
well-known types google/protobuf/*.proto (from grpcio-tools, BSD-3-Clause) to DIR; then
e.g. `protoc -I protos -I DIR --go_out=... protos/asyncgate/v1/*.proto`. `--deps` leaves
out the well-known types, which buf brings itself. Nothing third-party is vendored.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

import google.api
import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GENERATED = ROOT / "asyncgate" / "v1"
DEPS_DIR = ROOT / "build" / "protodeps"
GOOGLEAPIS = Path(next(iter(google.api.__path__))).parent.parent
WELL_KNOWN = Path(next(iter(grpc_tools.__path__))) / "_proto"


def _plugin(name: str) -> str:
    """A protoc plugin installed next to this interpreter (mypy-protobuf's typed gRPC stubs)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise SystemExit(f"{name} not found: pip install -e '.[dev]' (mypy-protobuf)")
    return str(path)


def _proto_files() -> list[str]:
    return sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{GOOGLEAPIS}",
        f"-I{WELL_KNOWN}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--mypy_grpc_out={out}",
        *_proto_files(),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    package = out / "asyncgate" / "v1"
    (out / "asyncgate" / "__init__.py").touch()
    (package / "__init__.py").write_text('"""Generated from protos/asyncgate/v1. Do not edit."""\n')


def _generated_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def check() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh_root = Path(tmp) / "asyncgate" / "v1"
        fresh, current = _generated_files(fresh_root), _generated_files(GENERATED)
        stale = sorted(fresh ^ current)
        stale += [
            f
            for f in sorted(fresh & current)
            if not filecmp.cmp(fresh_root / f, GENERATED / f, shallow=False)
        ]
    if stale:
        print("generated code is stale; run python scripts/gen_protos.py:", *stale, sep="\n  ")
        return 1
    print("generated code matches protos/")
    return 0


_LICENCES = """Include files for compiling protos/ (written by scripts/gen_protos.py; do not edit).
google/api, google/rpc: googleapis-common-protos, Apache License 2.0, Copyright Google LLC.
google/protobuf: Protocol Buffers well-known types, BSD 3-Clause, Copyright Google Inc.
"""


def write_includes(target: Path, *, well_known: bool) -> list[Path]:
    """Write the google protos protos/ can import, and a licence note, under `target`/google
    (files of the same name are overwritten); returns the .proto files written."""
    sources = [(GOOGLEAPIS, "google/api"), (GOOGLEAPIS, "google/rpc")]
    if well_known:
        sources.append((WELL_KNOWN, "google/protobuf"))
    written = []
    for root, package in sources:
        for source in sorted((root / package).rglob("*.proto")):
            destination = target / source.relative_to(root)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
            written.append(destination)
    (target / "google" / "README.txt").write_text(_LICENCES)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail when the checked-in code is stale")
    parser.add_argument(
        "--include-dir",
        type=Path,
        metavar="DIR",
        help="write the include files protos/ needs (google/api, google/rpc, well-known types) to DIR",
    )
    parser.add_argument("--deps", action="store_true", help="write google/api and google/rpc for buf")
    options = parser.parse_args()
    if options.include_dir is not None:
        written = write_includes(options.include_dir, well_known=True)
        print(f"wrote {len(written)} include files to {options.include_dir}")
        print(f"  protoc -I {PROTOS.relative_to(ROOT)} -I {options.include_dir} ...")
        return 0
    if options.deps:
        shutil.rmtree(DEPS_DIR, ignore_errors=True)  # ours alone (git-ignored): no stale files
        write_includes(DEPS_DIR, well_known=False)
        return 0
    if options.check:
        return check()
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        shutil.rmtree(GENERATED, ignore_errors=True)
        shutil.copytree(Path(tmp) / "asyncgate" / "v1", GENERATED)
    (ROOT / "asyncgate" / "__init__.py").write_text('"""Generated protobuf and gRPC code for asyncgate."""\n')
    print(f"wrote {GENERATED.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
