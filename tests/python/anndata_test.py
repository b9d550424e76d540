#!/usr/bin/python3
"""AnnData in and out of the Python client against a real wfm-server, with
.h5ad files written by the anndata library:

  * upload_anndata sends what the wfm tool's `upload FILE.h5ad` stores (the
    same features, coordinates, sample ids and labels, compared in the two
    stored data sets), from dense X, CSR X and obsm:KEY, and sends
    var_names as the data set's feature names;
  * a model trained on it reports them (ModelInfo.feature_names), and
    sample_niches returns an AnnData with them as var_names, one row per
    generated cell, obs "niche" and "condition"; it round-trips through
    .h5ad;
  * sample_gaussians returns means, SPD covariances and labels; a Gaussian
    model trains on (and is evaluated against) a point-cloud data set;
  * bad input: duplicate var_names are refused by the server, naming the
    field; missing keys and bad feature specs locally, before sending.

    anndata_test.py --server build/server/wfm-server --wfm build/client/wfm \\
        --python-out build/python
"""
import os
import sys
import unittest

import anndata
import numpy as np
import pandas as pd
import scipy.sparse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "testing"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
from wfm_server import ServerWithH5ad, parse_test_args  # noqa: E402

ARGS = None


def tissue(seed=0, cells=90, genes=5):
    """Cells in two sections with three types; X dense float32."""
    rng = np.random.default_rng(seed)
    types = np.array(["A", "B", "C"])[rng.integers(0, 3, cells)]
    profiles = {"A": 0.0, "B": 2.0, "C": 4.0}
    X = np.stack([np.full(genes, profiles[t]) for t in types]) + rng.normal(0, 0.3, (cells, genes))
    adata = anndata.AnnData(
        X=X.astype(np.float32),
        obs=pd.DataFrame({"cell_type": pd.Categorical(types),
                          "section": pd.Categorical(np.where(np.arange(cells) < cells // 2,
                                                             "s1", "s2"))},
                         index=[f"c{i}" for i in range(cells)]),
        var=pd.DataFrame(index=[f"Gene{g}" for g in range(genes)]))
    adata.obsm["spatial"] = rng.uniform(0, 10, (cells, 2)).astype(np.float32)
    adata.obsm["X_pca"] = rng.normal(0, 1, (cells, 3)).astype(np.float32)
    return adata


def stored_arrays(data_dir, name):
    with np.load(os.path.join(data_dir, "datasets", name, "data.npz"), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class AnnDataTest(ServerWithH5ad, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        global Client, WfmError
        cls.start(ARGS, "wfm-py-anndata-", tissue())
        from wfm_client import Client, WfmError  # noqa: F401

    def assert_same_cells(self, a, b, features=True):
        x, y = stored_arrays(self.data_dir, a), stored_arrays(self.data_dir, b)
        keys = set(x) if features else set(x) - {"features"}
        self.assertEqual(set(x), set(y))
        for key in keys:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)

    def test_upload_matches_the_tools_upload_of_the_same_file(self):
        adata = anndata.read_h5ad(self.h5ad)
        stored = self.client.upload_anndata(adata, "py-dense", features="X", spatial_key="spatial",
                                            sample_key="section", label_key="cell_type",
                                            chunk_bytes=600)  # several chunks
        self.assertEqual((stored.items, stored.dim, stored.samples), (90, 5, 2))
        self.assertEqual(list(stored.label_names), ["A", "B", "C"])
        self.assertEqual(list(stored.feature_names), [f"Gene{g}" for g in range(5)])
        self.assertEqual(list(self.client.dataset("py-dense").feature_names),
                         list(stored.feature_names))
        self.wfm("upload", self.h5ad, "--name", "cli-dense", "--features", "X", "--spatial-key",
                 "spatial", "--sample-key", "section", "--label-key", "cell_type")
        self.assert_same_cells("py-dense", "cli-dense")
        # The tool sends X's var_names too.
        self.assertEqual(list(self.client.dataset("cli-dense").feature_names),
                         list(stored.feature_names))
        np.testing.assert_array_equal(stored_arrays(self.data_dir, "py-dense")["features"],
                                      self.adata.X)

        # condition_keys=[column] is label_key=column.
        self.client.upload_anndata(adata, "py-cond", sample_key="section",
                                   condition_keys=["cell_type"])
        self.assert_same_cells("py-dense", "py-cond")
        # DESIGN.md's positional order: (adata, name, features, spatial_key,
        # sample_key, condition_keys).
        self.client.upload_anndata(adata, "py-cond2", "X", "spatial", "section", ["cell_type"])
        self.assert_same_cells("py-dense", "py-cond2")

    def test_sparse_x_and_obsm_features(self):
        sparse = self.adata.copy()
        sparse.X = scipy.sparse.csr_matrix(np.where(sparse.X > 1.0, sparse.X, 0.0))
        path = os.path.join(self.tmp, "sparse.h5ad")
        sparse.write_h5ad(path)
        back = anndata.read_h5ad(path)
        self.assertTrue(scipy.sparse.issparse(back.X))
        self.client.upload_anndata(back, "py-sparse", sample_key="section", label_key="cell_type",
                                   chunk_bytes=300)
        np.testing.assert_array_equal(stored_arrays(self.data_dir, "py-sparse")["features"],
                                      sparse.X.toarray())
        self.wfm("upload", path, "--name", "cli-sparse", "--sample-key", "section", "--label-key",
                 "cell_type")
        self.assert_same_cells("py-sparse", "cli-sparse")

        pca = self.client.upload_anndata(back, "py-pca", features="obsm:X_pca")
        self.assertEqual(pca.dim, 3)
        self.assertEqual(list(pca.feature_names), [])  # an obsm array names no features
        np.testing.assert_array_equal(stored_arrays(self.data_dir, "py-pca")["features"],
                                      self.adata.obsm["X_pca"])

    def test_trained_model_gives_niches_as_anndata_with_the_var_names(self):
        self.client.upload_anndata(self.adata, "niche-cells", sample_key="section",
                                   label_key="cell_type", overwrite=True)
        self.client.train("niche-cells", "niche-model", family="pointcloud", k=4, steps=20,
                          batch=8, emb=16, layers=1, heads=2, mlp=16, seed=3, watch=True,
                          overwrite=True)
        self.assertEqual(list(self.client.model("niche-model").feature_names),
                         list(self.adata.var_names))
        niches = self.client.sample_niches("niche-model", 5, condition="B", points=4, seed=1,
                                           steps=5)
        self.assertIsInstance(niches, anndata.AnnData)
        self.assertEqual(niches.shape, (20, 5))
        self.assertEqual(list(niches.var_names), list(self.adata.var_names))
        self.assertEqual(niches.obs["niche"].tolist(), [i for i in range(5) for _ in range(4)])
        self.assertEqual(set(niches.obs["condition"]), {"B"})
        self.assertTrue(np.all(np.isfinite(niches.X)))
        # The same seed gives the same niches as sample().
        raw = self.client.sample("niche-model", 5, label="B", points=4, seed=1, steps=5)
        np.testing.assert_array_equal(niches.X, raw.points)
        path = os.path.join(self.tmp, "generated.h5ad")
        niches.write_h5ad(path)
        back = anndata.read_h5ad(path)
        np.testing.assert_array_equal(back.X, niches.X)
        self.assertEqual(list(back.var_names), list(niches.var_names))
        self.assertEqual(back.obs["condition"].tolist(), ["B"] * 20)
        # The tool's .h5ad of the same request: the same cells and var names.
        tool = os.path.join(self.tmp, "tool.h5ad")
        self.wfm("sample", "--model", "niche-model", "--num", "5", "--label", "B", "--points",
                 "4", "--seed", "1", "--steps", "5", "--out", tool)
        written = anndata.read_h5ad(tool)
        np.testing.assert_array_equal(written.X, niches.X)
        self.assertEqual(list(written.var_names), list(self.adata.var_names))

    def test_niches_of_condition_vectors_and_progress_lines(self):
        from wfm_client import anndata_io, progress
        points = np.arange(10, dtype=np.float32).reshape(5, 2)
        conditions = np.array([[0.5], [1.5]], dtype=np.float32)
        niches = anndata_io.niches_to_anndata(points, [0, 2, 5], conditions, None)
        self.assertEqual(list(niches.var_names), ["0", "1"])
        self.assertEqual(niches.obs["niche"].tolist(), [0, 0, 1, 1, 1])
        self.assertNotIn("condition", niches.obs)
        np.testing.assert_array_equal(niches.obsm["condition"][:, 0], [0.5, 0.5, 1.5, 1.5, 1.5])
        # Without tqdm: one line per tenth of the work reached, on stderr.
        saved, progress._tqdm = progress._tqdm, None
        try:
            import contextlib
            import io
            err = io.StringIO()
            with contextlib.redirect_stderr(err), progress.Progress(True, 20, "train m",
                                                                     "steps") as bar:
                for step in range(0, 21, 3):
                    bar.update_to(step, loss=0.5)
        finally:
            progress._tqdm = saved
        lines = err.getvalue().splitlines()
        self.assertEqual(lines[0], "train m: 3/20 steps loss 0.5")
        self.assertEqual(len(lines), 6)  # 3, 6, 9, 12, 15, 18 of 20

    def test_gaussian_cell_states(self):
        self.client.upload_anndata(self.adata, "gauss-cells", sample_key="section",
                                   label_key="cell_type", overwrite=True)
        self.client.train("gauss-cells", "gauss-model", family="gaussian", k=5, steps=10,
                          batch=8, seed=2, watch=True, overwrite=True)
        self.assertEqual(list(self.client.model("gauss-model").feature_names),
                         list(self.adata.var_names))
        g = self.client.sample_gaussians("gauss-model", 4, label="C", steps=5, seed=1)
        self.assertEqual(g.means.shape, (4, 5))
        self.assertEqual(g.covs.shape, (4, 5, 5))
        np.testing.assert_allclose(g.covs, g.covs.transpose(0, 2, 1), atol=1e-9)
        self.assertTrue(np.all(np.linalg.eigvalsh(g.covs) > 0))
        self.assertEqual(g.labels, ["C"] * 4)

    def test_gaussian_model_from_point_clouds(self):
        # Each cloud's mean and covariance are the training Gaussians (the
        # reference's point_clouds= input); Evaluate compares with them too.
        rng = np.random.default_rng(4)
        clouds = [rng.normal(m, 0.5, (30, 2)) for m in (-2.0, 2.0) * 12]
        labels = ["left", "right"] * 12
        self.client.upload_point_clouds("pc-for-gaussians", clouds, labels=labels, overwrite=True)
        job = self.client.train("pc-for-gaussians", "pc-gaussians", family="gaussian", steps=10,
                                batch=8, seed=2, watch=True, overwrite=True)
        self.assertEqual(job.family, 2)  # FAMILY_GAUSSIAN
        g = self.client.sample_gaussians("pc-gaussians", 3, label="right", steps=5, seed=1)
        self.assertEqual(g.covs.shape, (3, 2, 2))
        self.assertTrue(np.all(np.linalg.eigvalsh(g.covs) > 0))
        metrics = self.client.evaluate("pc-gaussians", "pc-for-gaussians", num=8, steps=5)
        self.assertTrue(0.0 <= metrics.bures.one_nna <= 1.0, metrics)

    def test_three_dimensional_tissue(self):
        # An .h5ad with 3-D coordinates written by anndata: upload_anndata and
        # `wfm upload` store the same [n, 3] coordinates; models train and
        # sample on its niches.
        adata = tissue(seed=7, cells=80)
        rng = np.random.default_rng(7)
        adata.obsm["spatial"] = rng.uniform(0, 10, (80, 3)).astype(np.float32)
        path = os.path.join(self.tmp, "tissue3d.h5ad")
        adata.write_h5ad(path)
        back = anndata.read_h5ad(path)
        stored = self.client.upload_anndata(back, "py-3d", sample_key="section",
                                            label_key="cell_type", chunk_bytes=500)
        self.assertEqual((stored.items, stored.spatial_dim), (80, 3))
        self.wfm("upload", path, "--name", "cli-3d", "--sample-key", "section", "--label-key",
                 "cell_type")
        self.assert_same_cells("py-3d", "cli-3d")
        np.testing.assert_array_equal(stored_arrays(self.data_dir, "py-3d")["coords"],
                                      adata.obsm["spatial"])
        self.assertEqual(self.client.dataset("cli-3d").spatial_dim, 3)
        # 2-D uploads keep spatial_dim 2.
        self.assertEqual(self.client.upload_anndata(self.adata, "py-2d").spatial_dim, 2)
        self.client.train("py-3d", "model-3d", family="pointcloud", k=4, steps=10, batch=8, emb=16,
                          layers=1, heads=2, mlp=16, seed=3, watch=True)
        niches = self.client.sample_niches("model-3d", 3, condition="A", points=4, steps=3, seed=1)
        self.assertEqual(niches.shape, (12, 5))
        self.client.train("py-3d", "states-3d", family="gaussian", k=6, steps=10, batch=8, seed=3,
                          watch=True)
        g = self.client.sample_gaussians("states-3d", 2, label="B", steps=3)
        self.assertEqual(g.covs.shape, (2, 5, 5))
        with self.assertRaisesRegex(ValueError, "1 to 16 columns"):
            wide = adata.copy()
            wide.obsm["spatial"] = np.zeros((80, 17), np.float32)
            self.client.upload_anndata(wide, "x")

    def test_given_sources(self):
        # init= starts the flow from given clouds / Gaussians: the output of
        # one call fed back, as a list of arrays or the Samples; for an
        # unconditional model nothing is then drawn, whatever the seed.
        self.client.upload_anndata(self.adata, "init-cells", sample_key="section", overwrite=True)
        self.client.train("init-cells", "init-model", family="pointcloud", k=4, steps=10, batch=8,
                          emb=16, layers=1, heads=2, mlp=16, seed=3, watch=True, overwrite=True)
        first = self.client.sample("init-model", 3, points=4, steps=3, seed=1)
        moved = self.client.sample("init-model", 0, steps=3, seed=5, init=first)
        again = self.client.sample("init-model", 3, steps=3, seed=6, init=first.clouds)
        np.testing.assert_array_equal(moved.offsets, first.offsets)
        np.testing.assert_array_equal(moved.points, again.points)
        self.assertFalse(np.array_equal(moved.points, first.points))
        niches = self.client.sample_niches("init-model", 0, steps=3, init=first)
        np.testing.assert_array_equal(niches.X, moved.points)
        # The same as `wfm sample --init` of the tool's own output file.
        out, fed = os.path.join(self.tmp, "first.npz"), os.path.join(self.tmp, "fed.npz")
        self.wfm("sample", "--model", "init-model", "--num", "3", "--points", "4", "--steps", "3",
                 "--seed", "1", "--out", out)
        with np.load(out) as z:
            np.testing.assert_array_equal(z["points"], first.points)
            via_file = self.client.sample("init-model", 0, steps=3, init=z)
        self.wfm("sample", "--model", "init-model", "--init", out, "--steps", "3", "--out", fed)
        with np.load(fed) as z:
            np.testing.assert_array_equal(z["points"], moved.points)
        np.testing.assert_array_equal(via_file.points, moved.points)
        with self.assertRaises(WfmError) as e:
            self.client.sample("init-model", 2, steps=3, init=first)
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        self.assertIn("init_sizes: 3 given source clouds for num_samples 2", e.exception.message)
        with self.assertRaisesRegex(ValueError, "init"):
            self.client.sample("init-model", 0, init=[np.zeros((0, 5))])

        self.client.train("init-cells", "init-states", family="gaussian", k=6, steps=10, batch=8,
                          seed=3, watch=True, overwrite=True)
        g = self.client.sample_gaussians("init-states", 2, steps=3)
        h = self.client.sample_gaussians("init-states", 0, steps=3, seed=9, init=g)
        i = self.client.sample_gaussians("init-states", 2, steps=3, seed=8,
                                         init=(g.means, g.covs))
        np.testing.assert_array_equal(h.means, i.means)
        np.testing.assert_array_equal(h.covs, i.covs)
        self.assertFalse(np.array_equal(h.means, g.means))
        bad = g.covs.copy()
        bad[1] = -bad[1]
        with self.assertRaises(WfmError) as e:
            self.client.sample_gaussians("init-states", 0, steps=3, init=(g.means, bad))
        self.assertIn("init_covs[1]: not positive definite", e.exception.message)

    def test_bad_input(self):
        dup = self.adata.copy()
        dup.var_names = ["g0", "g1", "g0", "g3", "g4"]
        with self.assertRaises(WfmError) as e:
            self.client.upload_anndata(dup, "dup-genes")
        self.assertEqual(e.exception.code, "INVALID_ARGUMENT")
        self.assertIn("header.feature_names[2]: 'g0' repeats header.feature_names[0]",
                      e.exception.message)
        with self.assertRaisesRegex(KeyError, "obsm\\['X_umap'\\]"):
            self.client.upload_anndata(self.adata, "x", features="obsm:X_umap")
        with self.assertRaisesRegex(KeyError, "spatial_key='xy'"):
            self.client.upload_anndata(self.adata, "x", spatial_key="xy")
        with self.assertRaisesRegex(KeyError, "label_key='tissue'"):
            self.client.upload_anndata(self.adata, "x", label_key="tissue")
        scored = self.adata.copy()
        scored.obs["score"] = np.linspace(0, 1, scored.n_obs)
        with self.assertRaisesRegex(ValueError, "label_key='score': obs\\['score'\\] holds floats"):
            self.client.upload_anndata(scored, "x", label_key="score")
        with self.assertRaisesRegex(ValueError, "use 'X' or 'obsm:KEY'"):
            self.client.upload_anndata(self.adata, "x", features="layers:counts")
        nan = self.adata.copy()
        nan.X[7, 2] = np.nan
        with self.assertRaisesRegex(ValueError, "not finite"):
            self.client.upload_anndata(nan, "x")
        names = [d.name for d in self.client.datasets()]
        self.assertNotIn("x", names)
        self.assertNotIn("dup-genes", names)


if __name__ == "__main__":
    ARGS, argv = parse_test_args("server", "wfm", "python-out")
    unittest.main(argv=argv)
