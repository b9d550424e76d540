#!/usr/bin/python3
"""The Python client balances its calls round-robin over every address of its
target: two wfm-server processes on 127.0.0.1 and 127.0.0.2 (one port) both
receive a client's calls; with pick_first one of them receives them all.
Server addresses follow the wfm tool's rules (channel_target).

    round_robin_test.py --server build/server/wfm-server --python-out build/python
"""
import os
import re
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "testing"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
from wfm_server import Server, parse_test_args  # noqa: E402

ARGS = None
CALLS = 20


def list_models_calls(server):
    """ListModels calls the server answered OK (its /metrics)."""
    url = "http://127.0.0.1:%d/metrics" % server.metrics_port
    text = urllib.request.urlopen(url, timeout=30).read().decode()
    m = re.search(r'^wfm_rpc_requests_total\{(?=[^}]*method="ListModels")(?=[^}]*code="OK")'
                  r'[^}]*\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else None


class RoundRobinTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        sys.path.insert(0, ARGS.python_out)
        cls.tmp = tempfile.mkdtemp(prefix="wfm_rr_")
        os.makedirs(os.path.join(cls.tmp, "a"))
        os.makedirs(os.path.join(cls.tmp, "b"))
        cls.a = Server(ARGS.server, os.path.join(cls.tmp, "a"), "a", [])
        cls.b = Server(ARGS.server, os.path.join(cls.tmp, "b"), "b", [],
                       listen="127.0.0.2:%d" % cls.a.port)

    @classmethod
    def tearDownClass(cls):
        for s in (cls.a, cls.b):
            s.stop()

    def calls(self):
        return list_models_calls(self.a), list_models_calls(self.b)

    def test_round_robin_reaches_every_address(self):
        # round_robin picks among READY subchannels: the second may still be
        # connecting during the first calls (slow under sanitizers), so the
        # client calls until both servers have answered, for at most a minute.
        from wfm_client import Client
        port = self.a.port
        for target in ("127.0.0.1:%d,127.0.0.2:%d" % (port, port),
                       "ipv4:127.0.0.1:%d,127.0.0.2:%d" % (port, port)):
            before = self.calls()
            calls, da, db = 0, 0, 0
            deadline = time.monotonic() + 60
            with Client(target) as client:
                while (da == 0 or db == 0) and time.monotonic() < deadline:
                    for _ in range(CALLS):
                        client.models()
                    calls += CALLS
                    after = self.calls()
                    da, db = after[0] - before[0], after[1] - before[1]
            self.assertGreater(da, 0, "%s after %d calls" % (target, calls))
            self.assertGreater(db, 0, "%s after %d calls" % (target, calls))
            self.assertEqual(da + db, calls, target)

    def test_pick_first_keeps_one_server(self):
        from wfm_client import Client
        port = self.a.port
        before = self.calls()
        with Client("127.0.0.1:%d,127.0.0.2:%d" % (port, port),
                    load_balancing="pick_first") as client:
            for _ in range(CALLS):
                client.models()
        after = self.calls()
        self.assertIn((after[0] - before[0], after[1] - before[1]), [(CALLS, 0), (0, CALLS)])

    def test_addresses_and_policies_are_checked(self):
        from wfm_client import Client, channel_target
        self.assertEqual(channel_target("wfm:50051"), "wfm:50051")
        self.assertEqual(channel_target(" dns:///wfm-server-headless.ns.svc:50051 "),
                         "dns:///wfm-server-headless.ns.svc:50051")
        self.assertEqual(channel_target("10.0.0.1:50051, 10.0.0.2:50051"),
                         "ipv4:10.0.0.1:50051,10.0.0.2:50051")
        self.assertEqual(channel_target("[::1]:1,[fe80::1]:2"), "ipv6:[::1]:1,[fe80::1]:2")
        for bad in ("", "  ", "a:1,b:1", "10.0.0.1:1,[::1]:1", "10.0.0.1,10.0.0.2:1",
                    "10.0.0.1:1,10.0.0.2:x"):
            with self.assertRaises(ValueError, msg=repr(bad)):
                channel_target(bad)
        with self.assertRaisesRegex(ValueError, "round_robin"):
            Client("127.0.0.1:1", load_balancing="random")


if __name__ == "__main__":
    ARGS, argv = parse_test_args("server", "python-out")
    unittest.main(argv=argv)
