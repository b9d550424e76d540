#!/usr/bin/python3
"""The Python client's training keywords come from the server's option table
(DescribeTrainingOptions): every field of wfm.v1.TrainingConfig, found by
reflection over the proto descriptor, is reachable through a keyword of
Client.train(), and the keywords convert and refuse values as documented;
init_from_model= fine-tunes a stored model; a second training adds a model
version, which version= selects, update_model pins and load_model /
unload_model move in and out of the server's memory.

    training_options_test.py --server build/server/wfm-server --python-out build/python
"""
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "testing"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
from wfm_server import Server, parse_test_args  # noqa: E402

ARGS = None


def leaf_paths(descriptor, prefix=""):
    """Every scalar field below `descriptor`, as dotted paths."""
    for field in descriptor.fields:
        path = prefix + field.name
        if field.message_type is not None:
            yield from leaf_paths(field.message_type, path + ".")
        elif path != "family":
            yield path


def non_default(option, field):
    """A value for `field` of `option` that is not its default."""
    if option.type == "bool":
        return field.default_value != "on"
    if option.type == "string":
        others = [c for c in field.choices if c != field.default_value]
        return others[0] if others else "other-" + field.default_value
    if option.type in ("int", "uint"):
        return int(field.default_value) * 2 or 3
    return float(field.default_value) * 0.37 + 0.01


def get_path(message, path):
    *parents, leaf = path.split(".")
    for name in parents:
        if not message.HasField(name):
            return None
        message = getattr(message, name)
    if message.DESCRIPTOR.fields_by_name[leaf].has_presence:
        return getattr(message, leaf) if message.HasField(leaf) else None
    return getattr(message, leaf) or None


class TrainingOptionsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        sys.path.insert(0, ARGS.python_out)
        global types_pb2, Client
        from wfm.v1 import types_pb2  # noqa: F401
        from wfm_client import Client  # noqa: F401
        cls.tmp = tempfile.mkdtemp(prefix="wfm-py-options-")
        cls.server = Server(ARGS.server, cls.tmp, "server", [])
        cls.client = Client(cls.server.address)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()

    def test_every_training_config_field_is_a_keyword(self):
        options = self.client.training_options()
        families = {"pointcloud": types_pb2.FAMILY_POINTCLOUD, "gaussian": types_pb2.FAMILY_GAUSSIAN}
        for path in leaf_paths(types_pb2.TrainingConfig.DESCRIPTOR):
            reached = 0
            for family, enum in families.items():
                if path.split(".")[0] in families and path.split(".")[0] != family:
                    continue
                for option in options:
                    for field in option.fields:
                        if field.family != enum or field.path != path:
                            continue
                        keyword = option.name.replace("-", "_")
                        value = non_default(option, field)
                        config = self.client.training_config(family, **{keyword: value})
                        self.assertEqual(get_path(config, path), value, f"{keyword} -> {path}")
                        reached += 1
            self.assertGreater(reached, 0, f"TrainingConfig.{path} has no train() keyword")

    def test_keywords_convert_and_refuse(self):
        config = self.client.training_config("pointcloud", steps=30, minibatch_ot="off", eps=0.01,
                                             monge_map="argmax", seed=None)
        self.assertEqual(config.optimizer.steps, 30)
        self.assertTrue(config.pointcloud.HasField("minibatch_ot"))
        self.assertFalse(config.pointcloud.minibatch_ot)
        self.assertAlmostEqual(config.pointcloud.epsilon, 0.01)
        self.assertFalse(config.optimizer.HasField("seed"))  # None leaves it unset
        self.assertFalse(config.optimizer.HasField("batch_size"))
        with self.assertRaisesRegex(TypeError, "unknown option 'warp'"):
            self.client.training_config("pointcloud", warp=9)
        with self.assertRaisesRegex(ValueError, "monge_map does not apply to family 'gaussian'"):
            self.client.training_config("gaussian", monge_map="argmax")
        with self.assertRaisesRegex(ValueError, "expected an integer"):
            self.client.training_config("gaussian", steps=2.5)
        with self.assertRaisesRegex(ValueError, "expected on or off"):
            self.client.training_config("gaussian", minibatch_ot="sometimes")

    def test_the_server_refuses_what_the_table_refuses(self):
        from wfm_client import WfmError
        with self.assertRaises(WfmError) as e:
            self.client.train("no-such-data", "m", family="pointcloud", emb=1)
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        self.assertIn("config.network.width: must be in [2, 4096], got 1", e.exception.message)

    def test_init_from_model_fine_tunes_a_stored_model(self):
        import numpy as np
        from wfm_client import WfmError
        rng = np.random.default_rng(3)
        means = rng.normal(size=(8, 2))
        covs = np.stack([np.eye(2) * (0.5 + 0.1 * i) for i in range(8)])
        self.client.upload_gaussians("ft-a", means, covs)
        self.client.upload_gaussians("ft-b", means + 1.0, covs)
        tiny = dict(steps=3, batch=4, emb=16, layers=1, mlp=32)
        self.client.train("ft-a", "ft-base", watch=True, **tiny)
        job = self.client.train("ft-b", "ft-tuned", watch=True, init_from_model="ft-base",
                                init_from_version=1, **tiny)
        self.assertEqual(job.init_from_model, "ft-base")
        self.assertEqual(job.init_from_version, 1)
        info = self.client.model("ft-tuned")
        self.assertEqual(info.init_from_model, "ft-base")
        self.assertEqual(info.summary.dataset, "ft-b")
        with self.assertRaises(WfmError) as e:
            self.client.train("ft-b", "ft-wider", init_from_model="ft-base", **dict(tiny, emb=32))
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        self.assertIn("config.network.width: 32 differs from the base model 'ft-base' (16)",
                      e.exception.message)
        with self.assertRaises(WfmError) as e:
            self.client.train("ft-b", "ft-none", init_from_model="no-such-model", **tiny)
        self.assertEqual(e.exception.code, "NOT_FOUND")
        self.assertIn("init_from_model: model 'no-such-model' not found", e.exception.message)

    def test_versions_are_listed_selected_pinned_and_deleted(self):
        import numpy as np
        from wfm_client import WfmError
        rng = np.random.default_rng(5)
        means = rng.normal(size=(8, 2))
        covs = np.stack([np.eye(2) * (0.5 + 0.1 * i) for i in range(8)])
        self.client.upload_gaussians("v-data", means, covs)
        tiny = dict(steps=3, batch=4, emb=16, layers=1, mlp=32)
        self.client.train("v-data", "v", watch=True, seed=1, **tiny)
        self.client.train("v-data", "v", watch=True, seed=2, **tiny)
        info = self.client.model("v")
        self.assertEqual([v.version for v in info.versions], [1, 2])
        self.assertEqual((info.version, info.serving_version, info.pinned_version), (2, 2, 0))
        self.assertEqual(self.client.model("v", version=1).version, 1)
        first = self.client.sample_gaussians("v", 2, steps=3, seed=4, version=1)
        latest = self.client.sample_gaussians("v", 2, steps=3, seed=4)
        self.assertEqual((first.version, latest.version), (1, 2))
        self.assertFalse(np.array_equal(first.means, latest.means))
        # Residency: an unloaded version loads again on use, same results.
        self.assertEqual([v.loaded for v in info.versions], [True, True])
        unloaded = self.client.unload_model("v")
        self.assertEqual([v.loaded for v in unloaded.versions], [False, False])
        self.assertFalse(unloaded.loaded)
        reloaded = self.client.sample_gaussians("v", 2, steps=3, seed=4, version=1)
        np.testing.assert_array_equal(reloaded.means, first.means)
        self.assertEqual([v.loaded for v in self.client.model("v").versions], [True, False])
        loaded = self.client.load_model("v")
        self.assertEqual([v.loaded for v in loaded.versions], [True, True])
        self.assertTrue(loaded.loaded)
        self.assertGreater(loaded.memory_bytes, 0)
        self.assertEqual(loaded.memory_bytes, loaded.versions[1].memory_bytes)
        self.assertEqual(self.client.evaluate("v", "v-data", num=4, steps=2, version=1).version, 1)
        pinned = self.client.update_model("v", serving_version=1)
        self.assertEqual((pinned.serving_version, pinned.pinned_version), (1, 1))
        again = self.client.sample_gaussians("v", 2, steps=3, seed=4)
        self.assertEqual(again.version, 1)
        np.testing.assert_array_equal(again.means, first.means)
        with self.assertRaises(WfmError) as e:
            self.client.delete_model("v", version=1)
        self.assertEqual(e.exception.code, "FAILED_PRECONDITION")
        self.client.delete_model("v", version=2)
        self.assertEqual([v.version for v in self.client.model("v").versions], [1])
        with self.assertRaises(WfmError) as e:
            self.client.sample_gaussians("v", 1, version=2)
        self.assertEqual(e.exception.code, "NOT_FOUND")


if __name__ == "__main__":
    ARGS, argv = parse_test_args("server", "python-out")
    unittest.main(argv=argv)
