"""Stubs from a clone: `scripts/gen_protos.py --include-dir DIR` writes every file protos/
imports, so protoc needs nothing but a copy of protos/ and DIR."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# grpc_tools.protoc's main() alone: `python -m grpc_tools.protoc` would add its own copy
# of the well-known types to the include path, hiding a missing one.
_PROTOC = "import sys; from grpc_tools import protoc; sys.exit(protoc.main(['protoc', *sys.argv[1:]]))"


def _protoc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PROTOC, *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def _write_includes(target: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--include-dir", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_python_stubs_generate_from_protos_and_the_include_dir_alone(tmp_path: Path) -> None:
    protos, include, out = tmp_path / "protos", tmp_path / "include", tmp_path / "out"
    shutil.copytree(ROOT / "protos", protos)
    _write_includes(include)
    assert not (include / "asyncgate").exists()
    files = sorted(str(p.relative_to(protos)) for p in protos.rglob("*.proto"))
    out.mkdir()

    generated = _protoc(
        f"-I{protos}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}", *files, cwd=tmp_path
    )

    assert generated.returncode == 0, generated.stderr
    for package in (out / "asyncgate", out / "asyncgate" / "v1"):
        (package / "__init__.py").touch()  # a regular package, so it wins over the installed one
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import asyncgate.v1.job_service_pb2_grpc as stubs, asyncgate.v1.job_service_pb2 as pb;"
            "print(stubs.__file__);"
            "print(' '.join(m.name for m in pb.DESCRIPTOR.services_by_name['JobService'].methods))",
        ],
        cwd=out,
        capture_output=True,
        text=True,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    where, methods = loaded.stdout.splitlines()
    assert Path(where).is_relative_to(out)
    assert "CreateEmbeddingJob" in methods.split()


def test_without_the_include_dir_protoc_cannot_find_the_google_imports(tmp_path: Path) -> None:
    protos = tmp_path / "protos"
    shutil.copytree(ROOT / "protos", protos)
    out = tmp_path / "out"
    out.mkdir()

    failed = _protoc(f"-I{protos}", f"--python_out={out}", "asyncgate/v1/embedding.proto", cwd=tmp_path)

    assert failed.returncode != 0
    assert "google/api/field_behavior.proto: File not found" in failed.stderr
