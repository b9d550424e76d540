#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets under fuzz/corpus/<target>/
and the hand-made malformed inputs fuzz/regressions/<target>/handmade_*.

Run with Debian's /usr/bin/python3 (numpy, h5py, anndata, protobuf):

    fuzz/make_corpus.py [--stubs BUILD/python]

--stubs is the folder holding the generated wfm/v1/*_pb2.py modules (built by
the target wfm_proto_python; default: the first build*/python folder of the
checkout that has them). Every file is small valid input of its target; the
whole corpus stays under 1 MB. The output is deterministic (fixed seeds), so
re-running it leaves the committed files unchanged.
"""

import argparse
import glob
import io
import json
import os
import shutil
import struct
import sys
import tempfile
import zlib

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def out_dir(target):
    path = os.path.join(CORPUS, target)
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)
    return path


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


# ----------------------------------------------------------------- .npy


def npy_bytes(array, version=None):
    buf = io.BytesIO()
    if version is None:
        np.save(buf, array, allow_pickle=False)
    else:
        np.lib.format.write_array(buf, array, version=version, allow_pickle=False)
    return buf.getvalue()


def make_npy():
    d = out_dir("npy")
    rng = np.random.default_rng(1)
    seeds = {
        "float32_2d": rng.standard_normal((4, 3)).astype(np.float32),
        "float64_be": rng.standard_normal(5).astype(">f8"),
        "int64_offsets": np.array([0, 3, 7, 9], dtype=np.int64),
        "int8": np.array([-3, 0, 127], dtype=np.int8),
        "uint16_be": np.array([1, 2, 65535], dtype=">u2"),
        "uint64": np.array([0, 2**63], dtype=np.uint64),
        "bool": np.array([True, False, True]),
        "unicode": np.array(["a", "héllo", "ζ"]),
        "bytes": np.array([b"ab", b"c\x00d", b""], dtype="S3"),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)),
        "scalar": np.float64(2.5) * np.ones(()),
        "empty_rows": np.zeros((0, 3), dtype=np.float32),
        "three_d": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
    }
    for name, array in seeds.items():
        write(os.path.join(d, name + ".npy"), npy_bytes(array))
    write(os.path.join(d, "version2.npy"), npy_bytes(np.arange(4, dtype="<i4"), version=(2, 0)))
    write(os.path.join(d, "version3.npy"), npy_bytes(np.array(["x", "yz"]), version=(3, 0)))


# ----------------------------------------------------------------- .npz


def npz_bytes(compressed, **arrays):
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def make_npz():
    d = out_dir("npz")
    rng = np.random.default_rng(2)
    points = rng.standard_normal((9, 2)).astype(np.float32)
    offsets = np.array([0, 3, 7, 9], dtype=np.int64)
    write(os.path.join(d, "clouds.npz"), npz_bytes(False, points=points, offsets=offsets))
    write(os.path.join(d, "clouds_int_labels_deflated.npz"),
          npz_bytes(True, points=points, offsets=offsets,
                    labels=np.array([1, 2, 1], dtype=np.int64)))
    write(os.path.join(d, "clouds_string_labels.npz"),
          npz_bytes(False, points=points.astype(np.float64), offsets=offsets.astype(np.int32),
                    labels=np.array(["a", "b", "a"])))
    write(os.path.join(d, "clouds_continuous.npz"),
          npz_bytes(False, points=points, offsets=offsets,
                    labels=rng.standard_normal((3, 2)).astype(np.float32)))
    means = rng.standard_normal((3, 2))
    a = rng.standard_normal((3, 2, 2))
    covs = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(2)
    write(os.path.join(d, "gaussians.npz"), npz_bytes(False, means=means, covs=covs))
    write(os.path.join(d, "gaussians_labels_deflated.npz"),
          npz_bytes(True, means=means.astype(np.float32), covs=covs,
                    labels=np.array(["x", "y", "x"])))


# ----------------------------------------------------------------- .h5ad


def make_h5ad():
    import anndata
    import h5py
    import pandas as pd
    import scipy.sparse as sp

    d = out_dir("h5ad")
    rng = np.random.default_rng(3)
    n, g = 6, 3
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(["t", "b", "t", "nk", "b", "t"]),
            "count": np.arange(n, dtype=np.int64),
            "score": rng.standard_normal(n),
            "flag": np.array([True, False] * 3),
            "sample": ["s1", "s1", "s2", "s2", "s2", "s1"],
        },
        index=[f"c{i}" for i in range(n)],
    )
    var = pd.DataFrame(index=[f"g{j}" for j in range(g)])
    dense = anndata.AnnData(X=rng.standard_normal((n, g)).astype(np.float32), obs=obs, var=var)
    dense.obsm["spatial"] = rng.standard_normal((n, 2))
    sparse = anndata.AnnData(X=sp.csr_matrix(np.eye(n, g, dtype=np.float32)), obs=obs[["cell_type"]],
                             var=var)
    sparse.obsm["X_pca"] = sp.csc_matrix(rng.standard_normal((n, 2)))
    with tempfile.TemporaryDirectory() as tmp:
        for name, adata in (("dense", dense), ("sparse", sparse)):
            path = os.path.join(tmp, name + ".h5ad")
            adata.write_h5ad(path)
            shutil.copy(path, os.path.join(d, name + ".h5ad"))
        # An older layout written with h5py directly: dense X, an enum
        # categorical and h5sparse-style attributes on a sparse obsm entry.
        path = os.path.join(tmp, "h5py_layout.h5ad")
        with h5py.File(path, "w") as f:
            f.create_dataset("X", data=np.arange(8, dtype=np.float64).reshape(4, 2))
            obs_group = f.create_group("obs")
            obs_group.attrs["_index"] = "index"
            obs_group.create_dataset("index", data=np.array([b"a", b"b", b"c", b"d"]))
            enum = h5py.enum_dtype({"x": 0, "y": 1}, basetype="i1")
            obs_group.create_dataset("kind", data=np.array([0, 1, 1, 0], dtype=np.int8), dtype=enum)
            var_group = f.create_group("var")
            var_group.create_dataset("_index", data=np.array([b"u", b"v"]))
            obsm = f.create_group("obsm")
            m = sp.csr_matrix(np.array([[1, 0], [0, 2], [0, 0], [3, 4]], dtype=np.float32))
            s = obsm.create_group("emb")
            s.attrs["h5sparse_format"] = "csr"
            s.attrs["h5sparse_shape"] = np.array(m.shape)
            s.create_dataset("data", data=m.data)
            s.create_dataset("indices", data=m.indices)
            s.create_dataset("indptr", data=m.indptr)
        shutil.copy(path, os.path.join(d, "h5py_layout.h5ad"))


# ----------------------------------------------------------------- checkpoint


def checkpoint_bytes(metadata, tensors):
    """The wfm checkpoint format version 1 (model/checkpoint/checkpoint.h)."""
    align = lambda n: (n + 63) & ~63
    entries, data, end = [], b"", 0
    for name, array in tensors:
        dtype = {np.dtype("float32"): "float32", np.dtype("float64"): "float64",
                 np.dtype("int64"): "int64", np.dtype("int32"): "int32",
                 np.dtype("bool"): "bool", np.dtype("uint8"): "uint8"}[array.dtype]
        raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        offset = align(end)
        data += b"\0" * (offset - len(data)) + raw
        end = offset + len(raw)
        entries.append({"name": name, "dtype": dtype, "shape": list(array.shape),
                        "offset": offset, "nbytes": len(raw), "crc32": zlib.crc32(raw)})
    data += b"\0" * (align(end) - len(data))
    header = json.dumps({"metadata": metadata, "tensors": entries},
                        separators=(",", ":")).encode()
    start = align(32 + len(header))
    size = start + len(data) + 20
    out = b"WFMCKPT\0" + struct.pack("<IIQQ", 1, 0, len(header), size) + header
    out += b"\0" * (start - len(out)) + data + struct.pack("<Q", size)
    out += struct.pack("<I", zlib.crc32(out)) + b"WFMEND\0\0"
    assert len(out) == size
    return out


def make_checkpoint():
    d = out_dir("checkpoint")
    rng = np.random.default_rng(4)
    write(os.path.join(d, "empty.wfm"), checkpoint_bytes({}, []))
    write(os.path.join(d, "model.wfm"), checkpoint_bytes(
        {"family": "pointcloud", "config": {"steps": 10, "lr": 1e-3}, "labels": ["a", "b"]},
        [("model.weight", rng.standard_normal((3, 4)).astype(np.float32)),
         ("model.bias", np.zeros(3, dtype=np.float32)),
         ("optimizer.group.0.lr", np.array(1e-3)),
         ("optimizer.group.0.amsgrad", np.array(False)),
         ("optimizer.state.weight.step", np.array(7, dtype=np.int64)),
         ("counts", np.arange(5, dtype=np.int32)),
         ("mask", np.array([1, 0, 1], dtype=np.uint8)),
         ("empty", np.zeros((0, 2), dtype=np.float64))]))
    fixture = os.path.join(ROOT, "tests", "fixtures", "checkpoint", "v1_small.wfm")
    if os.path.exists(fixture):
        shutil.copy(fixture, os.path.join(d, "v1_small.wfm"))


# ----------------------------------------------------------------- regressions


def npy_with_header(header, data=b"", version=1):
    """A .npy file with the given header dictionary text (padded as numpy does)."""
    header = header.encode("latin1")
    prefix = 10 if version == 1 else 12
    pad = (64 - (prefix + len(header) + 1) % 64) % 64
    header += b" " * pad + b"\n"
    length = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + length + header + data


def zip_stored(members):
    """A zip archive with stored (uncompressed) members, as numpy.savez writes."""
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            z.writestr(info, data)
    return buf.getvalue()


def make_regressions():
    """Hand-made malformed inputs every reader must reject with an error.

    Only the handmade_* files are (re)written: inputs the fuzzers found are
    kept next to them.
    """
    base = os.path.join(ROOT, "fuzz", "regressions")

    def put(target, name, data):
        d = os.path.join(base, target)
        os.makedirs(d, exist_ok=True)
        write(os.path.join(d, "handmade_" + name), data)

    f4 = "'descr': '<f4', 'fortran_order': False"
    put("npy", "truncated_header.npy", b"\x93NUMPY\x01\x00\xc8\x00{'descr'")
    put("npy", "bad_magic.npy", b"\x93NUMPX\x01\x00" + b"\x00" * 20)
    put("npy", "huge_shape.npy", npy_with_header("{%s, 'shape': (1099511627776,), }" % f4,
                                                 b"\x00" * 16))
    put("npy", "negative_dim.npy", npy_with_header("{%s, 'shape': (-3, 2), }" % f4, b"\x00" * 24))
    put("npy", "overflow_shape.npy",
        npy_with_header("{%s, 'shape': (4294967296, 4294967296, 4294967296), }" % f4))
    put("npy", "object_dtype.npy",
        npy_with_header("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", b"\x00" * 8))
    put("npy", "short_data.npy", npy_with_header("{%s, 'shape': (4, 4), }" % f4, b"\x00" * 60))
    put("npy", "huge_header_v2.npy", b"\x93NUMPY\x02\x00\xff\xff\xff\x7f{")

    clouds = open(os.path.join(CORPUS, "npz", "clouds.npz"), "rb").read()
    put("npz", "truncated.npz", clouds[: len(clouds) // 2])
    put("npz", "not_a_zip.npz", b"PK\x03\x04 this is not a zip archive")
    put("npz", "huge_member_shape.npz", zip_stored([
        ("points.npy", npy_with_header("{%s, 'shape': (1099511627776, 2), }" % f4, b"\x00" * 8)),
        ("offsets.npy", npy_bytes(np.array([0, 1], dtype=np.int64)))]))
    put("npz", "negative_offsets.npz", zip_stored([
        ("points.npy", npy_bytes(np.zeros((2, 2), dtype=np.float32))),
        ("offsets.npy", npy_bytes(np.array([0, -5, 2], dtype=np.int64)))]))
    crc = bytearray(clouds)
    crc[len(crc) // 3] ^= 0xFF  # inside the first member's data: CRC mismatch
    put("npz", "crc_mismatch.npz", bytes(crc))

    dense = open(os.path.join(CORPUS, "h5ad", "dense.h5ad"), "rb").read()
    put("h5ad", "truncated.h5ad", dense[:2048])
    put("h5ad", "not_hdf5.h5ad", b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    # A 4 KB file declaring X as 2^17 x 2^17 float32 (64 GiB) in chunks that
    # were never written (they read as the fill value): a reader must refuse
    # it rather than allocate.
    import h5py
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bomb.h5ad")
        n = 2**17
        with h5py.File(path, "w") as f:
            f.create_dataset("X", shape=(n, n), dtype="f4", chunks=(1, 1))
            for group in ("obs", "var"):
                f.create_group(group).create_dataset(
                    "_index", shape=(n,), dtype=h5py.string_dtype(), chunks=(1,))
        put("h5ad", "unwritten_huge_x.h5ad", open(path, "rb").read())

    align = lambda n: (n + 63) & ~63

    def raw_checkpoint(header, data=b""):
        header = header.encode()
        start = align(32 + len(header))
        size = start + len(data) + 20
        out = b"WFMCKPT\0" + struct.pack("<IIQQ", 1, 0, len(header), size) + header
        out += b"\0" * (start - len(out)) + data + struct.pack("<Q", size)
        return out + struct.pack("<I", zlib.crc32(out)) + b"WFMEND\0\0"

    model = open(os.path.join(CORPUS, "checkpoint", "model.wfm"), "rb").read()
    put("checkpoint", "truncated.wfm", model[:40])
    put("checkpoint", "huge_header_length.wfm",
        b"WFMCKPT\0" + struct.pack("<IIQQ", 1, 0, 2**63, 52) + b"\0" * 20)
    put("checkpoint", "huge_shape.wfm", raw_checkpoint(json.dumps({"metadata": {}, "tensors": [
        {"name": "x", "dtype": "float32", "shape": [2**40], "offset": 0, "nbytes": 2**42,
         "crc32": 0}]}), b"\0" * 64))
    put("checkpoint", "negative_dim.wfm", raw_checkpoint(json.dumps({"metadata": {}, "tensors": [
        {"name": "x", "dtype": "float32", "shape": [-1, 4], "offset": 0, "nbytes": 0,
         "crc32": 0}]})))
    put("checkpoint", "deep_json.wfm",
        raw_checkpoint('{"metadata": ' + "[" * 5000 + "]" * 5000 + ', "tensors": []}'))
    flipped = bytearray(model)
    flipped[40] ^= 0x01  # inside the header: whole-file checksum mismatch
    put("checkpoint", "crc_mismatch.wfm", bytes(flipped))


# ----------------------------------------------------------------- requests


def find_stubs(explicit):
    candidates = [explicit] if explicit else sorted(glob.glob(os.path.join(ROOT, "build*", "python")))
    for c in candidates:
        if c and os.path.exists(os.path.join(c, "wfm", "v1", "wfm_service_pb2.py")):
            return c
    sys.exit("make_corpus.py: no generated wfm/v1/wfm_service_pb2.py found; build the target "
             "wfm_proto_python and pass --stubs BUILD/python")


REQUEST_TYPES = [  # fuzz/targets.h kRequestTypes, in selector order
    "UploadDatasetRequest", "ListDatasetsRequest", "GetDatasetRequest", "DeleteDatasetRequest",
    "StartTrainingRequest", "GetTrainingJobRequest", "ListTrainingJobsRequest",
    "CancelTrainingJobRequest", "WatchTrainingJobRequest", "ListModelsRequest", "GetModelRequest",
    "DeleteModelRequest", "SampleNichesRequest", "SampleGaussiansRequest", "EvaluateRequest",
    "UpdateModelRequest",
]


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def make_requests(stubs):
    sys.path.insert(0, stubs)
    from wfm.v1 import types_pb2 as t
    from wfm.v1 import wfm_service_pb2 as s

    d = out_dir("requests")

    def put(name, message):
        selector = REQUEST_TYPES.index(type(message).__name__)
        write(os.path.join(d, name), bytes([selector]) + message.SerializeToString())

    def upload(name, messages):
        body = b"".join(varint(len(m.SerializeToString())) + m.SerializeToString()
                        for m in messages)
        write(os.path.join(d, name), bytes([0]) + body)

    upload("upload_clouds", [
        s.UploadDatasetRequest(header=s.DatasetHeader(
            name="clouds", kind=t.POINT_CLOUDS, dim=2, label_type=t.LABEL_TYPE_DISCRETE)),
        s.UploadDatasetRequest(clouds=s.PointCloudChunk(
            sizes=[2, 1], points=[0, 1, 2, 3, 4, 5], labels=["a", "b"])),
        s.UploadDatasetRequest(clouds=s.PointCloudChunk(sizes=[1], points=[6, 7], labels=["a"])),
    ])
    upload("upload_continuous", [
        s.UploadDatasetRequest(header=s.DatasetHeader(
            name="cont", kind=t.POINT_CLOUDS, dim=1, label_type=t.LABEL_TYPE_CONTINUOUS,
            condition_dim=2)),
        s.UploadDatasetRequest(clouds=s.PointCloudChunk(
            sizes=[1, 2], points=[0.5, 1, 2], conditions=[0, 1, 2, 3])),
    ])
    upload("upload_gaussians", [
        s.UploadDatasetRequest(header=s.DatasetHeader(name="g", kind=t.GAUSSIANS, dim=2,
                                                      overwrite=True)),
        s.UploadDatasetRequest(gaussians=s.GaussianChunk(
            means=[0, 0, 1, 1], covs=[1, 0, 0, 1, 2, 0.5, 0.5, 1])),
    ])
    upload("upload_cells", [
        s.UploadDatasetRequest(header=s.DatasetHeader(
            name="cells", kind=t.SPATIAL_CELLS, dim=2, label_type=t.LABEL_TYPE_DISCRETE,
            description="tiny")),
        s.UploadDatasetRequest(cells=s.CellChunk(
            features=[1, 2, 3, 4, 5, 6], coords=[0, 0, 1, 0, 0, 1],
            sample_ids=["s", "s", "s"], labels=["x", "y", "x"])),
    ])
    # A categorical "type" (T, B) and a numeric "age": vector values 0 to 2.
    type_age = [
        t.ConditionColumn(name="type", kind=t.CONDITION_KIND_CATEGORICAL, categories=["T", "B"],
                          width=2),
        t.ConditionColumn(name="age", kind=t.CONDITION_KIND_NUMERIC, width=1, offset=2)]
    upload("upload_cell_conditions", [
        s.UploadDatasetRequest(header=s.DatasetHeader(
            name="cc", kind=t.SPATIAL_CELLS, dim=1, label_type=t.LABEL_TYPE_CONTINUOUS,
            condition_dim=4, condition_columns=type_age + [
                t.ConditionColumn(name="pca", kind=t.CONDITION_KIND_OBSM, width=1, offset=3)])),
        s.UploadDatasetRequest(cells=s.CellChunk(
            features=[1, 2, 3], coords=[0, 0, 1, 0, 0, 1],
            conditions=[1, 0, 30, 0.5, 0, 1, 70, -1, 1, 0, 50, 2])),
    ])
    upload("upload_gaussian_conditions", [
        s.UploadDatasetRequest(header=s.DatasetHeader(
            name="gc", kind=t.GAUSSIANS, dim=1, label_type=t.LABEL_TYPE_CONTINUOUS,
            condition_dim=3, condition_columns=type_age)),
        s.UploadDatasetRequest(gaussians=s.GaussianChunk(
            means=[0.5, -1.0], covs=[1.0, 2.0], conditions=[1, 0, 30, 0, 1, 70])),
    ])
    put("list_datasets", s.ListDatasetsRequest())
    put("get_dataset", s.GetDatasetRequest(name="clouds"))
    put("delete_dataset", s.DeleteDatasetRequest(name="a.b-c_d"))
    put("start_pointcloud", s.StartTrainingRequest(
        dataset="clouds", model="m1", overwrite=True,
        config=t.TrainingConfig(
            family=t.FAMILY_POINTCLOUD,
            network=t.NetworkConfig(width=32, heads=4, layers=2, mlp_hidden=64, dropout=0.1),
            optimizer=t.OptimizerConfig(steps=10, batch_size=4, learning_rate=1e-3,
                                        decay_steps=5, decay_rate=0.9, grad_clip_norm=1, seed=3),
            pointcloud=t.PointCloudOptions(monge_map="entropic", epsilon=0.01,
                                           sinkhorn_iterations=0, sinkhorn_tolerance=1e-4,
                                           minibatch_ot=False, noise="normal", guidance=1.5,
                                           p_uncond=0.1, subsample_points=0),
            checkpoint_every=5, holdout_fraction=0.2)))
    put("start_gaussian", s.StartTrainingRequest(
        dataset="g", model="m2",
        config=t.TrainingConfig(
            family=t.FAMILY_GAUSSIAN,
            network=t.NetworkConfig(width=16, layers=2, architecture="joint"),
            optimizer=t.OptimizerConfig(steps=5),
            gaussian=t.GaussianOptions(minibatch_ot=True, minibatch_epsilon=0.01,
                                       velocity="riemannian", loss="tangent", noise="wishart"))))
    put("start_given_source", s.StartTrainingRequest(
        dataset="clouds", model="m3",
        config=t.TrainingConfig(family=t.FAMILY_POINTCLOUD, niche_size=4,
                                pointcloud=t.PointCloudOptions(noise="given_matched",
                                                               source_dataset="src"))))
    put("get_job", s.GetTrainingJobRequest(id="job-1"))
    put("list_jobs", s.ListTrainingJobsRequest())
    put("cancel_job", s.CancelTrainingJobRequest(id="job-2"))
    put("watch_job", s.WatchTrainingJobRequest(id="job-3"))
    put("list_models", s.ListModelsRequest())
    put("get_model", s.GetModelRequest(name="m1"))
    put("delete_model", s.DeleteModelRequest(name="m1"))
    put("get_model_version", s.GetModelRequest(name="m1", version=2))
    put("delete_model_version", s.DeleteModelRequest(name="m1", version=3))
    put("update_model", s.UpdateModelRequest(name="m1", serving_version=2, keep_versions=5))
    put("sample_niches_version", s.SampleNichesRequest(model="m1", num_samples=2, steps=3,
                                                       version=2))
    put("sample_gaussians_version", s.SampleGaussiansRequest(model="m2", num_samples=2, version=1))
    put("evaluate_version", s.EvaluateRequest(model="m1", dataset="clouds", version=4))
    put("sample_niches", s.SampleNichesRequest(
        model="m1", num_samples=4, points_per_sample=8, label="a", condition=[0.5],
        guidance=2.0, steps=10, seed=7, trajectory=True, samples_per_message=2))
    put("sample_gaussians", s.SampleGaussiansRequest(model="m2", num_samples=3, label="x",
                                                     steps=5, seed=1, trajectory=True))
    put("sample_gaussians_guided", s.SampleGaussiansRequest(
        model="m2", num_samples=2, condition=[1, 0, 40], guidance=2.5, steps=4, seed=3))
    put("sample_niches_init", s.SampleNichesRequest(
        model="m1", steps=4, seed=2, init_points=[0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        init_sizes=[1, 2]))
    put("sample_gaussians_init", s.SampleGaussiansRequest(
        model="m2", steps=3, init_means=[0.0, 1.0], init_covs=[2.0, 0.5, 0.5, 1.0]))
    # Hand-made hostile requests (fuzz/regressions/requests/handmade_*).
    reg = os.path.join(ROOT, "fuzz", "regressions", "requests")
    os.makedirs(reg, exist_ok=True)

    def reg_upload(name, messages):
        body = b"".join(varint(len(m.SerializeToString())) + m.SerializeToString()
                        for m in messages)
        write(os.path.join(reg, "handmade_" + name), bytes([0]) + body)

    def reg_put(name, message):
        selector = REQUEST_TYPES.index(type(message).__name__)
        write(os.path.join(reg, "handmade_" + name),
              bytes([selector]) + message.SerializeToString())

    reg_upload("upload_huge_dim", [
        s.UploadDatasetRequest(header=s.DatasetHeader(name="big", kind=t.POINT_CLOUDS,
                                                      dim=2**62)),
        s.UploadDatasetRequest(clouds=s.PointCloudChunk(sizes=[2**62, 2**62], points=[1, 2]))])
    reg_upload("upload_negative_sizes", [
        s.UploadDatasetRequest(header=s.DatasetHeader(name="neg", kind=t.POINT_CLOUDS, dim=1)),
        s.UploadDatasetRequest(clouds=s.PointCloudChunk(sizes=[-1, 3], points=[1, 2]))])
    reg_upload("upload_nan_covs", [
        s.UploadDatasetRequest(header=s.DatasetHeader(name="nan", kind=t.GAUSSIANS, dim=1)),
        s.UploadDatasetRequest(gaussians=s.GaussianChunk(means=[0], covs=[float("nan")]))])
    reg_upload("upload_traversal_name", [
        s.UploadDatasetRequest(header=s.DatasetHeader(name="../../etc", kind=t.GAUSSIANS,
                                                      dim=1))])
    reg_put("start_absurd", s.StartTrainingRequest(
        dataset="d", model="m", config=t.TrainingConfig(
            family=t.FAMILY_POINTCLOUD,
            network=t.NetworkConfig(width=2**62, heads=3, layers=-1, dropout=float("inf")),
            optimizer=t.OptimizerConfig(steps=2**63 - 1, batch_size=0, learning_rate=-1),
            pointcloud=t.PointCloudOptions(epsilon=0, noise="bogus"),
            holdout_fraction=float("nan"))))
    reg_put("sample_negative_steps", s.SampleNichesRequest(model="m", num_samples=-1, steps=-5))
    reg_put("evaluate_control_chars", s.EvaluateRequest(model="m\n\x01", dataset=".."))

    put("evaluate", s.EvaluateRequest(model="m1", dataset="clouds", split="heldout",
                                      num_samples=8, max_reference=8, steps=5, seed=2, emd=False))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stubs", help="folder holding wfm/v1/*_pb2.py")
    args = parser.parse_args()
    make_npy()
    make_npz()
    make_h5ad()
    make_checkpoint()
    make_regressions()
    make_requests(find_stubs(args.stubs))
    total = sum(os.path.getsize(os.path.join(dp, f))
                for dp, _, files in os.walk(CORPUS) for f in files)
    print(f"corpus: {total} bytes")
    if total >= 1 << 20:
        sys.exit("make_corpus.py: the corpus exceeds 1 MB")


if __name__ == "__main__":
    main()
