#!/usr/bin/python3
"""The Python package as users install it: `pip install ./python` into a
fresh virtual environment (--system-site-packages, offline: its
dependencies are Debian's), outside the source tree, then the examples run
with that environment's python against a real wfm-server:

  * the installed wfm_client carries its gRPC stubs (generated at build
    time from proto/), so nothing from the source or build tree is needed;
  * an sdist carries the .proto files and installs without the source tree;
  * python/examples/anndata_example.py (an .h5ad written by anndata in, a
    PNG out) and python/examples/example.py (numpy) succeed.

    package_test.py --server build/server/wfm-server
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "testing"))
from wfm_server import Server, parse_test_args  # noqa: E402

ARGS = None
PIP = ["-m", "pip", "install", "--no-index", "--no-build-isolation", "--quiet",
       "--disable-pip-version-check"]


def run(args, cwd, timeout=300):
    """Runs `args` with a clean environment (no PYTHONPATH: only what is
    installed counts); fails the test with its output when it fails."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n"
                             f"{done.stderr}")
    return done.stdout


def make_venv(folder):
    run([sys.executable, "-m", "venv", "--system-site-packages", folder], cwd="/")
    return os.path.join(folder, "bin", "python")


class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="wfm-py-package-")
        # A copy of python/ and proto/ as in the source tree, so building
        # (which writes python/build and *.egg-info) leaves the tree alone.
        cls.src = os.path.join(cls.tmp, "src")
        ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "dist")
        shutil.copytree(os.path.join(ROOT, "python"), os.path.join(cls.src, "python"),
                        ignore=ignore)
        shutil.copytree(os.path.join(ROOT, "proto"), os.path.join(cls.src, "proto"),
                        ignore=ignore)
        cls.python = make_venv(os.path.join(cls.tmp, "venv"))
        run([cls.python, *PIP, os.path.join(cls.src, "python")], cwd=cls.tmp)
        cls.work = os.path.join(cls.tmp, "work")  # the examples' working folder
        os.makedirs(cls.work)
        cls.server = Server(ARGS.server, cls.tmp, "server", [])

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_installed_package_carries_its_stubs(self):
        out = run([self.python, "-c",
                   "import inspect, wfm_client, wfm_client._stubs as s\n"
                   "print(wfm_client.__file__)\n"
                   "print(s.types_pb2.__name__)\n"
                   "print(list(inspect.signature(wfm_client.Client).parameters)[:3])\n"
                   "print(wfm_client.__version__)\n"], cwd=self.work).splitlines()
        self.assertTrue(out[0].startswith(os.path.join(self.tmp, "venv")), out[0])
        self.assertEqual(out[1], "wfm_client._proto.wfm.v1.types_pb2")
        self.assertEqual(out[2], "['address', 'token', 'tls']")
        # No top-level `wfm` package is installed beside it.
        self.assertEqual(glob.glob(os.path.join(self.tmp, "venv", "lib", "*", "site-packages",
                                                "wfm")), [])

    def test_sdist_builds_without_the_source_tree(self):
        dist = os.path.join(self.tmp, "dist")
        run([self.python, "setup.py", "-q", "sdist", "-d", dist],
            cwd=os.path.join(self.src, "python"))
        (archive,) = glob.glob(os.path.join(dist, "*.tar.gz"))
        python = make_venv(os.path.join(self.tmp, "venv-sdist"))
        run([python, *PIP, archive], cwd=self.tmp)  # pip unpacks it elsewhere: no ../proto
        out = run([python, "-c", "from wfm_client import Client\n"
                   f"print(Client('{self.server.address}').health())"], cwd=self.work)
        self.assertEqual(out.strip(), "SERVING")

    def test_anndata_example(self):
        h5ad = os.path.join(self.work, "tissue.h5ad")
        png = os.path.join(self.work, "niches.png")
        out = run([self.python, os.path.join(ROOT, "python", "examples", "anndata_example.py"),
                   "--server", self.server.address, "--h5ad", h5ad, "--write-demo", "--out", png,
                   "--steps", "40", "--num", "6", "--k", "4"], cwd=self.work, timeout=600)
        self.assertIn("anndata example: OK", out)
        with open(png, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertGreater(os.path.getsize(png), 1000)

    def test_numpy_example(self):
        out = run([self.python, os.path.join(ROOT, "python", "examples", "example.py"),
                   "--server", self.server.address, "--steps", "20", "--gaussian-steps", "10"],
                  cwd=self.work, timeout=600)
        self.assertIn("example: OK", out)


if __name__ == "__main__":
    ARGS, argv = parse_test_args("server")
    unittest.main(argv=argv)
