#!/usr/bin/python3
"""The Python client's queue policy keywords: priority= and queue_timeout= on
sample(), sample_niches() and sample_gaussians() reach the server (its queue
wait histogram counts each request under its priority), a request that waits
longer than its queue timeout behind a long one raises WfmError
DEADLINE_EXCEEDED without being computed, and bad values are refused before
any call.

    queue_policy_test.py --server build/server/wfm-server --python-out build/python
"""
import math
import os
import re
import sys
import tempfile
import time
import unittest
import urllib.request

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "testing"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
from wfm_server import Server, parse_test_args  # noqa: E402

ARGS = None


def metric(server, name, **labels):
    """The value of the first sample `name` carrying `labels`, or None."""
    url = "http://127.0.0.1:%d/metrics" % server.metrics_port
    text = urllib.request.urlopen(url, timeout=30).read().decode()
    ahead = "".join(r'(?=[^}]*%s="%s")' % (k, re.escape(v)) for k, v in labels.items())
    m = re.search(r"^%s\{%s[^}]*\} (\S+)$" % (re.escape(name), ahead), text, re.M)
    return float(m.group(1)) if m else None


def waited(server, model, priority):
    return metric(server, "wfm_sampling_queue_wait_seconds_count", model=model, priority=priority)


def wait_until(condition, seconds=60):
    """Polls `condition` until it holds (True) or `seconds` passed (False)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class QueuePolicyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        sys.path.insert(0, ARGS.python_out)
        from wfm_client import Client
        cls.tmp = tempfile.mkdtemp(prefix="wfm-py-queue-")
        cls.server = Server(ARGS.server, cls.tmp, "server", [])
        cls.client = Client(cls.server.address)
        rng = np.random.default_rng(0)
        clouds = [rng.normal(size=(int(n), 2)).astype(np.float32) for n in rng.integers(5, 9, 6)]
        cls.client.upload_point_clouds("clouds", clouds)
        tiny = dict(steps=3, batch=2, emb=16, layers=1, heads=2, watch=True)
        cls.client.train("clouds", "m", family="pointcloud", **tiny)
        cls.client.train("clouds", "g", family="gaussian", steps=3, batch=2, watch=True)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()

    def test_bad_keywords_are_refused_before_any_call(self):
        for kwargs in ({"priority": "urgent"}, {"priority": 2}, {"queue_timeout": 0},
                       {"queue_timeout": -1}, {"queue_timeout": 1e6},
                       {"queue_timeout": math.nan}):
            with self.subTest(**{k: str(v) for k, v in kwargs.items()}):
                with self.assertRaises(ValueError):
                    self.client.sample("m", 1, **kwargs)
                with self.assertRaises(ValueError):
                    self.client.sample_gaussians("g", 1, **kwargs)

    def test_priorities_reach_the_server(self):
        before = waited(self.server, "g", "low")
        self.client.sample_gaussians("g", 2, steps=2, priority="low", queue_timeout=600)
        self.assertEqual(waited(self.server, "g", "low"), before + 1)
        before = waited(self.server, "g", "high")
        self.client.sample_gaussians("g", 2, steps=2, priority="high")
        self.assertEqual(waited(self.server, "g", "high"), before + 1)

    def test_a_request_past_its_queue_timeout_is_not_computed(self):
        from wfm_client import WfmError
        from wfm_client._stubs import wfm_service_pb2
        # Minutes of work: it holds the model's batcher until cancelled.
        busy_request = wfm_service_pb2.SampleNichesRequest(
            model="m", num_samples=64, points_per_sample=64, steps=10000, seed=1)
        normal = waited(self.server, "m", "normal")
        busy = self.client._stub.SampleNiches(busy_request, timeout=600,
                                              metadata=self.client._metadata)
        try:
            # It left the queue: a call runs it.
            self.assertTrue(wait_until(lambda: waited(self.server, "m", "normal") == normal + 1))
            generated = metric(self.server, "wfm_generated_samples_total", model="m")
            high = waited(self.server, "m", "high")
            with self.assertRaises(WfmError) as e:
                self.client.sample("m", 1, points=5, steps=2, priority="high", queue_timeout=0.05)
            self.assertEqual(e.exception.code, "DEADLINE_EXCEEDED")
            self.assertIn("queue_timeout_seconds: waited ", e.exception.message)
            self.assertIn("nothing was computed", e.exception.message)
            self.assertEqual(waited(self.server, "m", "high"), high + 1)
            self.assertEqual(metric(self.server, "wfm_sampling_queue_timeouts_total", model="m"), 1)
            self.assertEqual(metric(self.server, "wfm_generated_samples_total", model="m"),
                             generated)
        finally:
            busy.cancel()
        # sample_niches passes the keywords on to sample().
        low = waited(self.server, "m", "low")
        niches = self.client.sample_niches("m", 2, points=5, steps=2, priority="low",
                                           queue_timeout=600)
        self.assertEqual(niches.obs["niche"].nunique(), 2)
        self.assertEqual(waited(self.server, "m", "low"), low + 1)


if __name__ == "__main__":
    ARGS, argv = parse_test_args("server", "python-out")
    unittest.main(argv=argv)
