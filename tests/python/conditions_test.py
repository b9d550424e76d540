#!/usr/bin/python3
"""Conditions from several obs columns and an obsm vector, against a real
wfm-server, with .h5ad files written by the anndata library:

  * `wfm upload --condition-key cell_type --condition-key age
    --condition-key obsm:shift` and upload_anndata(condition_keys=[...])
    store the same condition vectors, equal to the one-hot / value / row
    encoding computed here from the AnnData, and the same encoding
    (Dataset.condition_columns, then ModelInfo.condition_columns);
  * a model trained on tissue where the cell type shifts the niches'
    features generates niches shifted by the type given with
    `--condition cell_type=...,age=...,obsm:shift=...` (the tool) and
    sample_niches(condition={...}) (Python; the same niches for the same
    seed), with guidance;
  * a Gaussian model of the same tissue's niches (--family gaussian)
    generates cell states shifted by the type given, through
    sample_gaussians(condition={...}) and `wfm sample --condition`;
  * bad conditions are local errors naming --condition / the key;
  * point clouds carry an encoding too (upload_point_clouds(
    condition_columns=...)), and the server refuses encodings that break
    its rules, naming the column and the field.
  * GAUSSIANS data sets carry conditions: upload_gaussians(adata=...,
    condition_keys=[...]) of an .h5ad whose rows are the Gaussians (obs
    columns the conditions, obsm the means and covariances) stores the
    vectors computed here and the encoding, `wfm upload --means-key
    --covs-key --condition-key` of the same file the same, `wfm upload`
    the float labels of an .npz; a Gaussian model trained on them with --guidance 2
    (condition dropout p_uncond) samples guided through sample_gaussians(
    guidance=...) and `wfm sample --guidance` alike: γ 0 is the
    unconditional mixture, γ 1 and 2 the condition's cell states.

    conditions_test.py --server build/server/wfm-server --wfm build/client/wfm \\
        --python-out build/python
"""
import os
import sys
import unittest

import anndata
import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "testing"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
from wfm_server import ServerWithH5ad, parse_test_args  # noqa: E402
from anndata_test import stored_arrays  # noqa: E402

ARGS = None
SHIFT = {"lo": -3.0, "hi": 3.0}  # the features' mean by cell type


def tissue(seed=0, per_type=60, genes=2):
    """Two sections, one per cell type ("hi" listed first among the
    categories, so one-hot order is not alphabetical); a cell's features are
    N(SHIFT[type], 0.3); age numeric, obsm["shift"] a 2-column vector."""
    rng = np.random.default_rng(seed)
    types = np.array(["lo"] * per_type + ["hi"] * per_type)
    X = np.stack([rng.normal(SHIFT[t], 0.3, genes) for t in types]).astype(np.float32)
    n = len(types)
    adata = anndata.AnnData(
        X=X,
        obs=pd.DataFrame({"cell_type": pd.Categorical(types, categories=["hi", "lo"]),
                          "section": pd.Categorical(types),
                          "age": rng.uniform(20, 60, n)},
                         index=[f"c{i}" for i in range(n)]),
        var=pd.DataFrame(index=[f"Gene{g}" for g in range(genes)]))
    adata.obsm["spatial"] = rng.uniform(0, 10, (n, 2)).astype(np.float32)
    adata.obsm["shift"] = np.stack([np.full(n, 0.5), rng.normal(0, 1, n)], 1).astype(np.float32)
    return adata


KEYS = ["cell_type", "age", "obsm:shift"]


class ConditionsTest(ServerWithH5ad, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        global Client, WfmError, types_pb2
        cls.start(ARGS, "wfm-py-conditions-", tissue())
        from wfm_client import Client, WfmError  # noqa: F401
        from wfm_client._stubs import types_pb2  # noqa: F401

    def expected_vectors(self):
        a = self.adata
        onehot = np.stack([(a.obs["cell_type"] == "hi").to_numpy(),
                           (a.obs["cell_type"] == "lo").to_numpy()], 1).astype(np.float32)
        return np.concatenate([onehot, a.obs["age"].to_numpy(np.float32)[:, None],
                               a.obsm["shift"]], 1)

    def check_columns(self, info):
        columns = [(c.name, c.kind, list(c.categories), c.width, c.offset)
                   for c in info.condition_columns]
        self.assertEqual(columns, [
            ("cell_type", types_pb2.CONDITION_KIND_CATEGORICAL, ["hi", "lo"], 2, 0),
            ("age", types_pb2.CONDITION_KIND_NUMERIC, [], 1, 2),
            ("shift", types_pb2.CONDITION_KIND_OBSM, [], 2, 3)])
        self.assertEqual(info.condition_dim, 5)
        self.assertEqual(info.label_type, types_pb2.LABEL_TYPE_CONTINUOUS)

    def test_1_the_tool_and_python_store_the_same_vectors(self):
        flags = [x for key in KEYS for x in ("--condition-key", key)]
        uploaded = self.wfm("upload", self.h5ad, "--name", "cli-cond", "--sample-key", "section",
                            *flags).stdout
        back = anndata.read_h5ad(self.h5ad)
        stored = self.client.upload_anndata(back, "py-cond", sample_key="section",
                                            condition_keys=KEYS, chunk_bytes=500)
        self.check_columns(stored)
        self.check_columns(self.client.dataset("cli-cond"))
        cli, py = stored_arrays(self.data_dir, "cli-cond"), stored_arrays(self.data_dir, "py-cond")
        self.assertEqual(set(cli), set(py))
        self.assertIn("conditions", cli)
        for key in cli:
            np.testing.assert_array_equal(cli[key], py[key], err_msg=key)
        np.testing.assert_array_equal(py["conditions"], self.expected_vectors())
        # The tool shows the encoding.
        self.assertIn("condition vectors of dimension 5 from cell_type (categorical: hi, lo), "
                      "age (numeric), obsm:shift (2 values)", uploaded)
        self.assertIn("condition[5] cell_type,age,obsm:shift", self.wfm("datasets").stdout)

    def test_2_conditioned_niches_follow_the_condition(self):
        self.client.upload_anndata(self.adata, "shifted", sample_key="section",
                                   condition_keys=KEYS, overwrite=True)
        self.client.train("shifted", "shifted-model", family="pointcloud", k=5, steps=2000,
                          batch=16, emb=32, layers=2, heads=2, mlp=32, seed=5, p_uncond=0.2,
                          watch=True, overwrite=True)
        info = self.client.model("shifted-model")
        self.check_columns(info)
        self.assertIn("condition[5] cell_type,age,obsm:shift", self.wfm("models").stdout)

        means = {}
        for t in ("lo", "hi"):
            condition = {"cell_type": t, "age": 40, "obsm:shift": [0.5, 0.0]}
            niches = self.client.sample_niches("shifted-model", 40, condition=condition, points=5,
                                               steps=20, seed=2, guidance=2.0)
            self.assertEqual(niches.shape, (200, 2))
            # The niches report their decoded condition.
            self.assertEqual(set(niches.obs["cell_type"]), {t})
            np.testing.assert_array_equal(niches.obs["age"].to_numpy(), np.full(200, 40, np.float32))
            np.testing.assert_array_equal(niches.obsm["shift"], np.tile([0.5, 0.0], (200, 1)))
            means[t] = float(niches.X.mean())
            # The tool: the same request, the same niches.
            out = os.path.join(self.tmp, f"{t}.npz")
            self.wfm("sample", "--model", "shifted-model", "--num", "40", "--points", "5",
                     "--steps", "20", "--seed", "2", "--guidance", "2",
                     "--condition", f"cell_type={t},age=40,obsm:shift=0.5;0", "--out", out)
            with np.load(out) as z:
                np.testing.assert_array_equal(z["points"], niches.X)
        # The data: "lo" niches around -3, "hi" niches around +3 (loose bounds).
        self.assertLess(means["lo"], -1.5, means)
        self.assertGreater(means["hi"], 1.5, means)

    def test_3_bad_conditions_are_local_errors(self):
        self.client.upload_anndata(self.adata, "bad-cond", sample_key="section",
                                   condition_keys=KEYS, overwrite=True)
        self.client.train("bad-cond", "bad-model", family="pointcloud", k=4, steps=2, batch=4,
                          emb=16, layers=1, heads=2, mlp=16, watch=True, overwrite=True)
        out = os.path.join(self.tmp, "bad.npz")
        for condition, message in [
                ("cell_type=lo,age=40", "--condition: missing key 'obsm:shift'"),
                ("cell_type=mid,age=40,obsm:shift=0;0", "cell_type='mid': unknown category; one of hi, lo"),
                ("cell_type=lo,age=old,obsm:shift=0;0", "age='old': not a finite number"),
                ("cell_type=lo,age=1,obsm:shift=0", "obsm:shift: 1 values"),
                ("cell_type=lo,age=1,obsm:shift=0;0,size=2", "--condition: unknown key 'size'")]:
            run = self.wfm("sample", "--model", "bad-model", "--num", "2", "--condition", condition,
                           "--out", out, ok=False)
            self.assertNotEqual(run.returncode, 0, condition)
            self.assertIn(message, run.stderr, condition)
        self.assertFalse(os.path.exists(out))
        # A plain vector still works.
        self.wfm("sample", "--model", "bad-model", "--num", "2", "--steps", "2", "--condition",
                 "0,1,40,0.5,0", "--out", out)
        with self.assertRaisesRegex(KeyError, "missing key 'obsm:shift'"):
            self.client.sample_niches("bad-model", 2, condition={"cell_type": "lo", "age": 1})
        with self.assertRaisesRegex(KeyError, "unknown key 'size'"):
            self.client.sample_niches("bad-model", 2, condition={"size": 1})
        with self.assertRaisesRegex(ValueError, "'mid' is not a category"):
            self.client.sample_niches("bad-model", 2, condition={
                "cell_type": "mid", "age": 1, "obsm:shift": [0, 0]})
        with self.assertRaisesRegex(ValueError, "obsm:shift needs 2 finite number"):
            self.client.sample_niches("bad-model", 2, condition={
                "cell_type": "lo", "age": 1, "obsm:shift": [0]})
        # Upload keys: missing ones are local errors too.
        with self.assertRaisesRegex(KeyError, "no obs column 'tissue'"):
            self.client.upload_anndata(self.adata, "x", condition_keys=["cell_type", "tissue"])
        with self.assertRaisesRegex(KeyError, "no obsm\\['pca'\\]"):
            self.client.upload_anndata(self.adata, "x", condition_keys=["age", "obsm:pca"])
        run = self.wfm("upload", self.h5ad, "--name", "x", "--condition-key", "age",
                       "--condition-key", "tissue", ok=False)
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("--condition-key tissue", run.stderr)
        # A condition of the wrong length for a Gaussian model is the server's
        # INVALID_ARGUMENT naming the field.
        self.client.train("bad-cond", "bad-gauss", family="gaussian", k=4, steps=2, watch=True,
                          overwrite=True)
        with self.assertRaises(WfmError) as e:
            self.client.sample_gaussians("bad-gauss", 2, condition=[0, 1])
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        self.assertIn("condition: must have 5 values", e.exception.message)

    def test_5_gaussian_cell_states_follow_the_condition(self):
        self.client.upload_anndata(self.adata, "g-shifted", sample_key="section",
                                   condition_keys=KEYS, overwrite=True)
        self.client.train("g-shifted", "g-shifted-model", family="gaussian", k=5, steps=1500,
                          lr=1e-3, batch=16, emb=32, layers=2, mlp=32, seed=5, watch=True,
                          overwrite=True)
        info = self.client.model("g-shifted-model")
        self.assertEqual(info.family, types_pb2.FAMILY_GAUSSIAN)
        self.check_columns(info)
        means = {}
        for t in ("lo", "hi"):
            condition = {"cell_type": t, "age": 40, "obsm:shift": [0.5, 0.0]}
            g = self.client.sample_gaussians("g-shifted-model", 30, condition=condition, steps=20,
                                             seed=2)
            self.assertEqual(g.means.shape, (30, 2))
            vector = [1, 0] if t == "hi" else [0, 1]
            np.testing.assert_array_equal(g.labels, np.tile(vector + [40, 0.5, 0.0], (30, 1)))
            means[t] = float(g.means.mean())
            # The tool: the same request, the same Gaussians, with the
            # conditions stored as the labels.
            out = os.path.join(self.tmp, f"g-{t}.npz")
            self.wfm("sample", "--model", "g-shifted-model", "--num", "30", "--steps", "20",
                     "--seed", "2", "--condition", f"cell_type={t},age=40,obsm:shift=0.5;0",
                     "--out", out)
            with np.load(out) as z:
                np.testing.assert_array_equal(z["means"], g.means)
                np.testing.assert_array_equal(z["labels"], g.labels)
            # A plain vector is the same condition.
            plain = self.client.sample_gaussians("g-shifted-model", 30,
                                                 condition=vector + [40, 0.5, 0.0], steps=20,
                                                 seed=2)
            np.testing.assert_array_equal(plain.means, g.means)
        # The cell states: "lo" niches around -3, "hi" around +3 (loose bounds).
        self.assertLess(means["lo"], -1.5, means)
        self.assertGreater(means["hi"], 1.5, means)
        # Without a condition each Gaussian draws a training cell's vector.
        drawn = self.client.sample_gaussians("g-shifted-model", 8, steps=2, seed=3)
        self.assertEqual(drawn.labels.shape, (8, 5))
        self.assertTrue(set(map(tuple, drawn.labels[:, :2].tolist())) <= {(1.0, 0.0), (0.0, 1.0)})

    def test_4_point_clouds_carry_an_encoding_and_bad_ones_are_refused(self):
        from wfm_client.conditions import ConditionColumn
        rng = np.random.default_rng(1)
        clouds = [rng.normal(0, 1, (6, 2)) for _ in range(4)]
        conditions = np.array([[1, 0, 5], [0, 1, 6], [1, 0, 7], [0, 1, 8]], np.float32)
        columns = [ConditionColumn("shape", "categorical", ("round", "wide"), 2, 0),
                   ConditionColumn("size", "numeric", (), 1, 2)]
        stored = self.client.upload_point_clouds("pc-cond", clouds, conditions=conditions,
                                                 condition_columns=columns)
        self.assertEqual([(c.name, list(c.categories), c.offset) for c in stored.condition_columns],
                         [("shape", ["round", "wide"], 0), ("size", [], 2)])
        np.testing.assert_array_equal(stored_arrays(self.data_dir, "pc-cond")["labels"], conditions)
        # The server checks the encoding against condition_dim and its rules.
        for bad, message in [
                ([columns[0]], "header.condition_columns: the widths add up to 2, not condition_dim 3"),
                ([columns[0], columns[1]._replace(name="shape")],
                 "header.condition_columns[1].name: 'shape' repeats header.condition_columns[0]"),
                ([columns[0]._replace(categories=("round", "round")), columns[1]],
                 "header.condition_columns[0].categories[1]: 'round' repeats categories[0]")]:
            with self.assertRaises(WfmError) as e:
                self.client.upload_point_clouds("pc-bad", clouds, conditions=conditions,
                                                condition_columns=bad)
            self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
            self.assertIn(message, e.exception.message)
        self.assertNotIn("pc-bad", [d.name for d in self.client.datasets()])

    def test_6_gaussian_data_sets_carry_conditions_and_sample_guided(self):
        rng = np.random.default_rng(7)
        n = 48
        types = np.array(["lo", "hi"] * (n // 2))
        ages = rng.uniform(20, 60, n)
        means = np.stack([[SHIFT[t] + rng.normal(0, 0.2), rng.normal(0, 0.2)] for t in types])
        covs = np.stack([np.eye(2) * rng.uniform(0.2, 0.25) for _ in types])
        states = anndata.AnnData(
            obs=pd.DataFrame({"cell_type": pd.Categorical(types, categories=["hi", "lo"]),
                              "age": ages}, index=[f"g{i}" for i in range(n)]))
        states.obsm["mean"] = means
        states.obsm["cov"] = covs
        path = os.path.join(self.tmp, "states.h5ad")
        states.write_h5ad(path)
        states = anndata.read_h5ad(path)
        expected = np.concatenate([
            np.stack([types == "hi", types == "lo"], 1).astype(np.float32),
            ages[:, None].astype(np.float32)], 1)
        stored = self.client.upload_gaussians(
            "g-states", states.obsm["mean"], states.obsm["cov"], adata=states,
            condition_keys=["cell_type", "age"], chunk_bytes=1000)
        self.assertEqual(stored.items, n)
        self.assertEqual(stored.condition_dim, 3)
        self.assertEqual([(c.name, list(c.categories), c.width, c.offset)
                          for c in stored.condition_columns],
                         [("cell_type", ["hi", "lo"], 2, 0), ("age", [], 1, 2)])
        arrays = stored_arrays(self.data_dir, "g-states")
        np.testing.assert_array_equal(arrays["labels"], expected)
        np.testing.assert_array_equal(arrays["means"], means)
        # The tool: the same .h5ad (--means-key, --covs-key, --condition-key)
        # stores the same vectors and encoding.
        self.wfm("upload", path, "--name", "g-states-tool", "--means-key", "mean",
                 "--covs-key", "cov", "--condition-key", "cell_type", "--condition-key", "age")
        tool = stored_arrays(self.data_dir, "g-states-tool")
        for key in ("labels", "means", "covs"):
            np.testing.assert_array_equal(tool[key], arrays[key], key)
        self.assertEqual(self.client.dataset("g-states-tool").condition_columns,
                         stored.condition_columns)
        for args, message in [
                (["--means-key", "mean"], "--means-key and --covs-key: Gaussians from an .h5ad "
                                          "need both"),
                (["--means-key", "mean", "--covs-key", "mean"],
                 "obsm/mean (--covs-key): shape [48, 2]; covariances of the means need [48, 2, 2]"),
                (["--means-key", "mean", "--covs-key", "cov", "--sample-key", "age"],
                 "--sample-key applies to spatial cells, not to Gaussians"),
                (["--means-key", "mean", "--covs-key", "cov", "--condition-key", "tissue"],
                 "--condition-key tissue")]:
            run = self.wfm("upload", path, "--name", "g-bad", *args, ok=False)
            self.assertNotEqual(run.returncode, 0)
            self.assertIn(message, run.stderr)
        # The tool: an .npz with float labels is a set of condition vectors.
        npz = os.path.join(self.tmp, "states.npz")
        np.savez(npz, means=means, covs=covs, labels=expected)
        self.wfm("upload", npz, "--name", "g-states-npz")
        np.testing.assert_array_equal(stored_arrays(self.data_dir, "g-states-npz")["labels"],
                                      expected)
        self.assertEqual(self.client.dataset("g-states-npz").condition_dim, 3)
        # Python's own checks, before anything is sent.
        with self.assertRaisesRegex(ValueError, "adata: 2 rows for 48 Gaussians"):
            self.client.upload_gaussians("x", means, covs, adata=states[:2],
                                         condition_keys=["age"])
        with self.assertRaisesRegex(ValueError, "conditions\\[0, 0\\] is not finite"):
            self.client.upload_gaussians("x", means, covs,
                                         conditions=np.full((n, 1), np.nan))
        # Conditional with guidance: the null condition is learned too.
        self.client.train("g-states", "g-guided", family="gaussian", steps=600, lr=3e-3, batch=16,
                          emb=16, layers=1, mlp=32, seed=3, guidance=2.0, p_uncond=0.3,
                          watch=True)
        info = self.client.model("g-guided")
        self.assertEqual(info.default_guidance, 2.0)
        self.assertEqual([c.name for c in info.condition_columns], ["cell_type", "age"])
        hi = {"cell_type": "hi", "age": 40}
        out = {}
        for gamma in (0.0, 1.0, 2.0):
            g = self.client.sample_gaussians("g-guided", 100, condition=hi, guidance=gamma,
                                             steps=16, seed=4)
            np.testing.assert_array_equal(g.labels, np.tile([1, 0, 40], (100, 1)))
            out[gamma] = g.means[:, 0]
        # γ 0: both cell types' states; γ 1 and 2: the "hi" states (+3).
        self.assertGreater(np.mean(out[0.0] < -1.5), 0.15, out[0.0])
        self.assertGreater(np.mean(out[0.0] > 1.5), 0.15, out[0.0])
        for gamma in (1.0, 2.0):
            self.assertGreater(np.mean(out[gamma] > 1.5), 0.8, (gamma, out[gamma]))
        # The model's default is its training guidance; the tool samples alike.
        default = self.client.sample_gaussians("g-guided", 100, condition=hi, steps=16, seed=4)
        np.testing.assert_array_equal(default.means[:, 0], out[2.0])
        npz_out = os.path.join(self.tmp, "guided.npz")
        self.wfm("sample", "--model", "g-guided", "--num", "100", "--steps", "16", "--seed", "4",
                 "--condition", "cell_type=hi,age=40", "--guidance", "0", "--out", npz_out)
        with np.load(npz_out) as z:
            np.testing.assert_array_equal(z["means"][:, 0], out[0.0])
        # A bad γ is the server's INVALID_ARGUMENT naming the field.
        with self.assertRaises(WfmError) as e:
            self.client.sample_gaussians("g-guided", 2, condition=hi, guidance=-1)
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        self.assertIn("guidance: must be a finite number >= 0, got -1", e.exception.message)



if __name__ == "__main__":
    ARGS, argv = parse_test_args("server", "wfm", "python-out")
    unittest.main(argv=argv)
