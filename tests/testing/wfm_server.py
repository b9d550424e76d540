"""wfm-server as a child process for Python tests: started on 127.0.0.1:0,
its port read from the one line it logs when it is ready."""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time


class Server:
    """wfm-server on `listen` (127.0.0.1:0: a free port); the port comes
    from its ready line, and so does the metrics port (metrics_port)."""

    def __init__(self, binary, folder, name, flags, listen="127.0.0.1:0"):
        self.log_path = os.path.join(folder, name + ".log")
        self.log = open(self.log_path, "w")
        host = listen.rpartition(":")[0]
        self.proc = subprocess.Popen(
            [binary, "--listen", listen, "--metrics-listen", "127.0.0.1:0",
             "--data-dir", os.path.join(folder, "data"), "--threads", "1",
             "--log-level", "debug", *flags],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.port = None
        deadline = time.time() + 60
        while time.time() < deadline and self.port is None:
            if self.proc.poll() is not None:
                raise RuntimeError("wfm-server exited early:\n" + self.text())
            m = re.search(r"wfm-server ready: grpc %s:(\d+), metrics (?:[0-9.]+:(\d+)|off)"
                          % re.escape(host), self.text())
            if m:
                self.port = int(m.group(1))
                self.metrics_port = int(m.group(2)) if m.group(2) else None
            else:
                time.sleep(0.05)
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("no ready line within 60 s:\n" + self.text())
        self.address = "%s:%d" % (host, self.port)

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def parse_test_args(*flags):
    """The test program's required flags (names without "--", e.g.
    "python-out") from sys.argv, and the argv for unittest.main (the
    program's name and the arguments the flags left)."""
    parser = argparse.ArgumentParser()
    for flag in flags:
        parser.add_argument("--" + flag, required=True)
    args, rest = parser.parse_known_args()
    return args, [sys.argv[0], *rest]


class ServerWithH5ad:
    """Class fixture of the AnnData suites: a wfm-server in a temporary
    folder, a connected wfm_client.Client, and an AnnData written there as
    tissue.h5ad (cls.tmp, cls.server, cls.data_dir, cls.client, cls.adata,
    cls.h5ad); self.wfm runs the wfm tool against the server."""

    @classmethod
    def start(cls, args, prefix, adata):
        """args: parse_test_args's, with server, wfm and python_out."""
        cls.args = args
        sys.path.insert(0, args.python_out)
        from wfm_client import Client
        cls.tmp = tempfile.mkdtemp(prefix=prefix)
        cls.server = Server(args.server, cls.tmp, "server", [])
        cls.data_dir = os.path.join(cls.tmp, "data")
        cls.client = Client(cls.server.address)
        cls.adata = adata
        cls.h5ad = os.path.join(cls.tmp, "tissue.h5ad")
        adata.write_h5ad(cls.h5ad)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()

    def wfm(self, *args, ok=True):
        """wfm --server <the server> ARGS; with ok, asserts exit status 0."""
        run = subprocess.run([self.args.wfm, "--server", self.server.address, *args],
                             capture_output=True, text=True, timeout=300)
        if ok:
            self.assertEqual(run.returncode, 0, run.stderr)
        return run
