#!/usr/bin/python3
"""TLS, mutual TLS and bearer tokens of the real wfm-server binary, checked
with a real Python grpcio client and certificates made by `openssl` here:

  * TLS (--tls-cert/--tls-key) + --auth-token-file: a client trusting the CA
    with the right token gets in; a wrong, a missing or a malformed token is
    UNAUTHENTICATED (unary and streaming calls); health checking needs no
    token; a plaintext client and a client trusting another CA fail.
  * mTLS (--tls-client-ca in addition): a client without a certificate and a
    client whose certificate another CA signed fail; the right certificate
    (with the token) succeeds.
  * The token never appears in the server's log (run at --log-level debug,
    which logs every refused call).

    tls_python_test.py --server build/server/wfm-server --python-out build/python
"""
import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
from wfm_server import Server  # noqa: E402

ARGS = None
TIMEOUT = 10  # seconds per call
HEALTH_SERVICE = "wfm.v1.WfmService"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_certificates(folder):
    """ca / other: two CAs; server (SAN 127.0.0.1, localhost) and client
    signed by ca; stranger signed by other. EC P-256 keys."""
    def key(name):
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name + ".key",
                cwd=folder)

    for ca in ("ca", "other"):
        key(ca)
        openssl("req", "-x509", "-new", "-key", ca + ".key", "-out", ca + ".pem", "-days", "2",
                "-subj", "/CN=wfm-test-" + ca, cwd=folder)
    with open(os.path.join(folder, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, ca, extra in (("server", "ca", ["-extfile", "san.ext"]),
                            ("client", "ca", []), ("stranger", "other", [])):
        key(name)
        openssl("req", "-new", "-key", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name,
                cwd=folder)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
                "-CAcreateserial", "-out", name + ".pem", "-days", "2", *extra, cwd=folder)


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        sys.path.insert(0, ARGS.python_out)
        global grpc, pb, pb_grpc
        import grpc  # noqa: F401
        from wfm.v1 import wfm_service_pb2 as pb  # noqa: F401
        from wfm.v1 import wfm_service_pb2_grpc as pb_grpc  # noqa: F401
        cls.tmp = tempfile.mkdtemp(prefix="wfm_tls_")
        make_certificates(cls.tmp)
        # A token no other string in the test or the server could contain.
        cls.token = "tok-" + secrets.token_hex(20)
        cls.wrong_token = "tok-" + secrets.token_hex(20)
        cls.token_file = os.path.join(cls.tmp, "token")
        with open(cls.token_file, "w") as f:
            f.write(cls.token + "\n")
        cls.logs = []

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---------------------------------------------------------------- helpers

    def read(self, name):
        with open(os.path.join(self.tmp, name), "rb") as f:
            return f.read()

    def tls_channel(self, address, ca="ca", cert=None):
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.read(ca + ".pem"),
            private_key=self.read(cert + ".key") if cert else None,
            certificate_chain=self.read(cert + ".pem") if cert else None)
        return grpc.secure_channel(address, credentials)

    @staticmethod
    def connected(channel):
        # A channel that should work is connected before its first call:
        # gRPC 1.51 can fail a fresh connection attempt spuriously
        # (grpc/grpc#35064), and a call would then fail at once.
        try:
            grpc.channel_ready_future(channel).result(timeout=30)
        except grpc.FutureTimeoutError:
            pass  # the call reports why
        return channel

    @staticmethod
    def metadata(token):
        return None if token is None else (("authorization", "Bearer " + token),)

    def list_datasets(self, channel, token):
        """The status code of ListDatasets (grpc.StatusCode.OK on success)."""
        stub = pb_grpc.WfmServiceStub(channel)
        try:
            stub.ListDatasets(pb.ListDatasetsRequest(), timeout=TIMEOUT,
                              metadata=self.metadata(token))
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()

    def upload(self, channel, token, name):
        """Status code of a streamed upload of one triangle."""
        stub = pb_grpc.WfmServiceStub(channel)

        def messages():
            yield pb.UploadDatasetRequest(header=pb.DatasetHeader(
                name=name, kind=1, dim=2))  # POINT_CLOUDS
            yield pb.UploadDatasetRequest(clouds=pb.PointCloudChunk(
                sizes=[3], points=[0, 0, 1, 0, 0, 1]))
        try:
            stub.UploadDataset(messages(), timeout=TIMEOUT, metadata=self.metadata(token))
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()

    def health(self, channel, token=None):
        """grpc.health.v1.Health/Check by hand: 1 = SERVING; the status code
        on failure."""
        check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                    request_serializer=lambda b: b,
                                    response_deserializer=lambda b: b)
        request = b"\x0a" + bytes([len(HEALTH_SERVICE)]) + HEALTH_SERVICE.encode()
        try:
            reply = check(request, timeout=TIMEOUT, metadata=self.metadata(token))
        except grpc.RpcError as e:
            return e.code()
        return reply[1] if len(reply) >= 2 and reply[0] == 0x08 else 0

    def start(self, name, extra):
        server = Server(ARGS.server, self.tmp, name,
                        ["--tls-cert", os.path.join(self.tmp, "server.pem"),
                         "--tls-key", os.path.join(self.tmp, "server.key"),
                         "--auth-token-file", self.token_file, *extra])
        self.addCleanup(self.stop_and_check_log, server)
        return server

    def stop_and_check_log(self, server):
        code = server.stop()
        text = server.text()
        self.assertEqual(code, 0, text)
        # The log is not empty (the check below would be vacuous), it shows
        # the refused calls, and neither token appears anywhere in it.
        self.assertIn("wfm-server ready", text)
        self.assertIn("UNAUTHENTICATED", text)
        self.assertNotIn(self.token, text)
        self.assertNotIn(self.token[4:], text)
        self.assertNotIn(self.wrong_token, text)

    # ---------------------------------------------------------------- tests

    def test_tls_with_bearer_token(self):
        server = self.start("tls", [])
        good = self.connected(self.tls_channel(server.address))
        self.assertEqual(self.list_datasets(good, self.token), grpc.StatusCode.OK)
        self.assertEqual(self.list_datasets(good, self.wrong_token),
                         grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(self.list_datasets(good, None), grpc.StatusCode.UNAUTHENTICATED)
        # A prefix of the right token, and the right token without the scheme.
        self.assertEqual(self.list_datasets(good, self.token[:-1]),
                         grpc.StatusCode.UNAUTHENTICATED)
        stub = pb_grpc.WfmServiceStub(good)
        with self.assertRaises(grpc.RpcError) as raw:
            stub.ListDatasets(pb.ListDatasetsRequest(), timeout=TIMEOUT,
                              metadata=(("authorization", self.token),))
        self.assertEqual(raw.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        self.assertNotIn(self.token, raw.exception.details())
        # Streaming calls are guarded too; only the authenticated upload lands.
        self.assertEqual(self.upload(good, self.wrong_token, "intruder"),
                         grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(self.upload(good, None, "intruder"), grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(self.upload(good, self.token, "tls-ok"), grpc.StatusCode.OK)
        reply = stub.ListDatasets(pb.ListDatasetsRequest(), timeout=TIMEOUT,
                                  metadata=self.metadata(self.token))
        self.assertIn("tls-ok", [d.name for d in reply.datasets])
        self.assertNotIn("intruder", [d.name for d in reply.datasets])
        # Health checking needs no token (and works with one).
        self.assertEqual(self.health(good), 1)
        self.assertEqual(self.health(good, self.token), 1)
        # A plaintext client and a client trusting another CA never get an
        # answer, whatever token they carry.
        plain = grpc.insecure_channel(server.address)
        self.assertEqual(self.list_datasets(plain, self.token), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(self.health(plain), grpc.StatusCode.UNAVAILABLE)
        stranger = self.tls_channel(server.address, ca="other")
        self.assertEqual(self.list_datasets(stranger, self.token), grpc.StatusCode.UNAVAILABLE)
        for channel in (good, plain, stranger):
            channel.close()

    def test_mutual_tls(self):
        server = self.start("mtls", ["--tls-client-ca", os.path.join(self.tmp, "ca.pem")])
        no_cert = self.tls_channel(server.address)
        self.assertNotEqual(self.list_datasets(no_cert, self.token), grpc.StatusCode.OK)
        self.assertNotEqual(self.health(no_cert), 1)
        stranger = self.tls_channel(server.address, cert="stranger")
        self.assertNotEqual(self.list_datasets(stranger, self.token), grpc.StatusCode.OK)
        self.assertNotEqual(self.health(stranger), 1)
        plain = grpc.insecure_channel(server.address)
        self.assertEqual(self.list_datasets(plain, self.token), grpc.StatusCode.UNAVAILABLE)
        client = self.connected(self.tls_channel(server.address, cert="client"))
        self.assertEqual(self.list_datasets(client, self.token), grpc.StatusCode.OK)
        self.assertEqual(self.health(client), 1)
        # The certificate does not replace the token.
        self.assertEqual(self.list_datasets(client, None), grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(self.list_datasets(client, self.wrong_token),
                         grpc.StatusCode.UNAUTHENTICATED)
        for channel in (no_cert, stranger, plain, client):
            channel.close()


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True, help="the wfm-server binary")
    parser.add_argument("--python-out", required=True,
                        help="folder holding the generated wfm/v1 Python stubs")
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], "-v", *rest])


if __name__ == "__main__":
    main()
