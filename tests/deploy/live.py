"""Processes the deploy and distributed tests run on loopback: a wfm-server
on 127.0.0.1:0 with a temporary data folder, the `wfm` CLI against it, a
Prometheus server scraping it, and a tiny point-cloud data set."""
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import numpy as np


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode("utf-8")


def write_clouds(path, count=16, seed=0):
    """count small 2D clouds (6..9 points, blobs on a grid) in the .npz layout
    of DESIGN.md: points float32 [P, 2], offsets int64 [C+1]."""
    rng = np.random.default_rng(seed)
    points, offsets = [], [0]
    for c in range(count):
        n = 6 + c % 4
        center = np.array([c % 4 - 1.5, c // 4 - 1.5])
        points.append(center + 0.25 * rng.standard_normal((n, 2)))
        offsets.append(offsets[-1] + n)
    np.savez(path, points=np.concatenate(points).astype(np.float32),
             offsets=np.array(offsets, dtype=np.int64))


class Server:
    """wfm-server as a process; its log (stderr) in <data_dir>.log."""

    READY = re.compile(r"wfm-server ready: grpc ([0-9.]+):(\d+), metrics ([0-9.]+):(\d+)")

    def __init__(self, binary, data_dir, extra=()):
        self.data_dir = data_dir
        self.log_path = data_dir + ".log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
             "--data-dir", data_dir, "--threads", "1", *extra],
            stdout=self._log, stderr=subprocess.STDOUT)
        self.grpc_port = self.metrics_port = None

    def wait_ready(self, seconds=120):
        deadline = time.time() + seconds
        while time.time() < deadline:
            m = self.READY.search(self.log())
            if m:
                self.grpc_port, self.metrics_port = int(m.group(2)), int(m.group(4))
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"wfm-server exited {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.1)
        raise RuntimeError(f"wfm-server not ready after {seconds} s:\n{self.log()}")

    @property
    def address(self):
        return f"127.0.0.1:{self.grpc_port}"

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def scrape(self):
        status, text = http_get(f"http://127.0.0.1:{self.metrics_port}/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return text

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def cli(binary, server, *args, timeout=300, check=True):
    """Runs `wfm --server server args...`; returns the CompletedProcess."""
    result = subprocess.run([binary, "--server", server, *args], capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"wfm {' '.join(args)} exited {result.returncode}:\n"
                           f"{result.stdout}\n{result.stderr}")
    return result


TINY_TRAINING = ["--family", "pointcloud", "--steps", "6", "--batch", "4", "--emb", "16",
                 "--layers", "1", "--heads", "2", "--mlp", "32"]


class Prometheus:
    """Debian's prometheus on a free loopback port, scraping `targets` (job
    name -> [host:port]) every second, with `rule_files` loaded."""

    def __init__(self, workdir, targets, rule_files=()):
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       "scrape_timeout": "1s"},
            "rule_files": list(rule_files),
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(t)}]}
                               for job, t in targets.items()],
        }
        self.config_path = os.path.join(workdir, "prometheus.yml")
        with open(self.config_path, "w") as f:
            json.dump(config, f)  # JSON is YAML
        self.log_path = os.path.join(workdir, "prometheus.log")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={self.config_path}",
             f"--storage.tsdb.path={os.path.join(workdir, 'tsdb')}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, seconds=60):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited {self.proc.returncode}:\n{self.log()}")
            try:
                if http_get(f"http://127.0.0.1:{self.port}/-/ready", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready:\n{self.log()}")

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        body = json.loads(http_get(url)[1])
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr):
        """Instant vector result as [(labels, float value)]."""
        data = self.api("query", query=expr)
        if data["resultType"] != "vector":
            raise RuntimeError(f"{expr}: a {data['resultType']}, not a vector")
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
