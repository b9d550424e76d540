#!/usr/bin/python3
"""A running wfm-server picks up a model that a two-rank wfm-train run
publishes into its repository (<data-dir>/models/<name>/1/model.wfm), without
a restart, and samples from it.

    pickup_test.py --server build/server/wfm-server --cli build/client/wfm \
        --train build/train/wfm-train
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "deploy"))
import live  # noqa: E402

ARGS = None
# How long the server may take to notice a new model folder.
PICKUP_SECONDS = 90


class PickupTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wfm_pickup_")
        self.data_dir = os.path.join(self.tmp, "data")
        self.server = live.Server(ARGS.server, self.data_dir)
        self.server.wait_ready()

    def tearDown(self):
        self.server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def models(self):
        out = live.cli(ARGS.cli, self.server.address, "models", "--json").stdout
        doc = json.loads(out)
        items = doc.get("models", doc) if isinstance(doc, dict) else doc
        return {m["name"]: m for m in items}

    def test_server_picks_up_a_distributed_run(self):
        clouds = os.path.join(self.tmp, "clouds.npz")
        live.write_clouds(clouds, count=16)
        live.cli(ARGS.cli, self.server.address, "upload", clouds, "--name", "shapes")
        self.assertNotIn("wide", self.models())

        port = live.free_port()
        common = ["--data-dir", self.data_dir, "--dataset", "shapes", "--model", "wide",
                  "--steps", "4", "--batch", "8", "--emb", "16", "--layers", "1", "--heads", "2",
                  "--mlp", "32", "--threads", "1", "--world-size", "2",
                  "--master-addr", "127.0.0.1", "--master-port", str(port),
                  "--timeout-seconds", "60"]
        ranks = [subprocess.Popen([ARGS.train, *common, "--rank", str(r)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for r in range(2)]
        for r, proc in enumerate(ranks):
            out, _ = proc.communicate(timeout=240)
            self.assertEqual(proc.returncode, 0, f"rank {r}:\n{out}")
        self.assertTrue(
            os.path.exists(os.path.join(self.data_dir, "models", "wide", "1", "model.wfm")))

        deadline = time.time() + PICKUP_SECONDS
        while "wide" not in self.models():
            self.assertLess(time.time(), deadline,
                            f"the server did not pick up models/wide in {PICKUP_SECONDS} s\n"
                            f"{self.server.log()}")
            time.sleep(1)
        model = self.models()["wide"]
        self.assertIn("pointcloud", json.dumps(model).lower())
        out = os.path.join(self.tmp, "samples.npz")
        live.cli(ARGS.cli, self.server.address, "sample", "--model", "wide", "--num", "3",
                 "--points", "8", "--steps", "4", "--out", out)
        self.assertTrue(os.path.getsize(out) > 0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--cli", required=True)
    parser.add_argument("--train", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], *rest], verbosity=2)
