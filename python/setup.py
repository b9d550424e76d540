"""Build step of the wfm Python client: generates the gRPC stubs of
proto/wfm/v1 into the package (wfm_client/_proto/wfm/v1/*_pb2*.py) while
building, so `pip install ./python` needs no build folder.

Where the .proto files come from: ./proto (an sdist carries a copy there,
see SdistWithProtos) or ../proto (building from the source tree). The
compiler: protoc with grpc_python_plugin (Debian: protobuf-compiler,
protobuf-compiler-grpc; what the C++ build uses too), or else
`python -m grpc_tools.protoc` (grpcio-tools; Debian 12's 1.14 bundles
protoc 3.5, too old for the API's proto3 `optional` fields, so it is the
fallback). Override with WFM_PROTOC and WFM_GRPC_PYTHON_PLUGIN.

The generated modules import each other as `wfm.v1.*`; the build rewrites
those imports to `wfm_client._proto.wfm.v1.*` so the package stays
self-contained and never claims the top-level name `wfm`.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOS = ("wfm/v1/types.proto", "wfm/v1/wfm_service.proto")
PACKAGE = "wfm_client._proto"


def proto_root():
    """The folder holding wfm/v1/*.proto: ./proto (sdist) or ../proto."""
    for root in (os.path.join(HERE, "proto"), os.path.join(HERE, "..", "proto")):
        if all(os.path.isfile(os.path.join(root, p)) for p in PROTOS):
            return os.path.normpath(root)
    raise SystemExit("wfm_client build: proto/wfm/v1/*.proto not found in ./proto or ../proto; "
                     "build from the wfm source tree or from its sdist")


def compilers():
    """Candidate command lines (without arguments) that generate Python
    messages (--python_out) and gRPC stubs (--grpc_python_out)."""
    protoc = os.environ.get("WFM_PROTOC") or shutil.which("protoc")
    plugin = os.environ.get("WFM_GRPC_PYTHON_PLUGIN") or shutil.which("grpc_python_plugin")
    if protoc and plugin:
        yield [protoc, f"--plugin=protoc-gen-grpc_python={plugin}"]
    yield [sys.executable, "-m", "grpc_tools.protoc"]


def generate_stubs(out_dir):
    """Writes the stubs as the package wfm_client._proto below `out_dir`
    (the wfm_client folder of the build)."""
    root = proto_root()
    with tempfile.TemporaryDirectory() as tmp:
        errors = []
        for command in compilers():
            args = command + [f"--proto_path={root}", f"--python_out={tmp}",
                              f"--grpc_python_out={tmp}"] + [os.path.join(root, p) for p in PROTOS]
            try:
                run = subprocess.run(args, capture_output=True, text=True)
            except OSError as e:
                errors.append(f"{command[0]}: {e}")
                continue
            if run.returncode == 0:
                break
            errors.append(f"{' '.join(command)}: {run.stderr.strip()[:2000]}")
        else:
            raise SystemExit("wfm_client build: could not generate the gRPC stubs (install "
                             "protobuf-compiler and protobuf-compiler-grpc):\n" + "\n".join(errors))
        target = os.path.join(out_dir, "_proto")
        shutil.rmtree(target, ignore_errors=True)
        for folder in ("", "wfm", "wfm/v1"):
            os.makedirs(os.path.join(target, folder), exist_ok=True)
            with open(os.path.join(target, folder, "__init__.py"), "w") as f:
                f.write("" if folder else '"""gRPC stubs of proto/wfm/v1, generated at build time."""\n')
        pattern = re.compile(r"^from wfm\.v1 import ", re.MULTILINE)
        for proto in PROTOS:
            stem = proto[:-len(".proto")]
            for suffix in ("_pb2.py", "_pb2_grpc.py"):
                with open(os.path.join(tmp, stem + suffix)) as f:
                    text = pattern.sub(f"from {PACKAGE}.wfm.v1 import ", f.read())
                with open(os.path.join(target, stem + suffix), "w") as f:
                    f.write(text)


class BuildPyWithStubs(build_py):
    """build_py, then the stubs into the built package."""

    def run(self):
        super().run()
        if not self.dry_run:
            generate_stubs(os.path.join(self.build_lib, "wfm_client"))


class SdistWithProtos(sdist):
    """An sdist that carries the .proto files (./proto), so it builds
    outside the source tree."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        root = proto_root()
        for proto in PROTOS:
            dest = os.path.join(base_dir, "proto", proto)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copyfile(os.path.join(root, proto), dest)


setup(cmdclass={"build_py": BuildPyWithStubs, "sdist": SdistWithProtos})
