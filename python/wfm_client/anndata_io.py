"""AnnData in and out of wfm (no gRPC here): the cells of an in-memory
AnnData as the arrays of a SPATIAL_CELLS upload, and generated niches as an
AnnData. anndata is imported only when these are used."""

from typing import Any, Callable, List, Optional, Sequence

import numpy as np

from .conditions import ConditionColumn, encode_conditions, obs_column


class CellArrays:
    """What upload_anndata sends, read from an AnnData without copying X:
    `rows(start, end)` gives the features of cells [start, end) as a dense
    float32 array (a CSR X is densified one chunk at a time)."""

    def __init__(self, n: int, dim: int, rows: Callable[[int, int], np.ndarray],
                 coords: np.ndarray, sample_ids: Optional[List[str]],
                 labels: Optional[List[str]], feature_names: Optional[List[str]],
                 conditions: Optional[np.ndarray] = None,
                 condition_columns: Optional[List[ConditionColumn]] = None):
        self.n = n
        self.dim = dim
        self.rows = rows
        self.coords = coords
        self.sample_ids = sample_ids
        self.labels = labels
        self.feature_names = feature_names
        self.conditions = conditions  # [n, k] float32 condition vectors, or None
        self.condition_columns = condition_columns  # their encoding


# The server's bound on the columns of spatial coordinates (DatasetHeader.spatial_dim).
MAX_SPATIAL_DIM = 16

def _obs_strings(adata: Any, key: str, what: str) -> List[str]:
    column = obs_column(adata, key, what)
    if str(column.dtype) == "category":
        return column.astype(str).tolist()
    if np.issubdtype(column.dtype, np.floating):  # as the wfm tool: no continuous labels
        raise ValueError(f"{what}={key!r}: obs[{key!r}] holds floats; labels and sample ids "
                         "come from categorical, string, integer or bool columns")
    return [str(int(v)) if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
            else str(v) for v in column]


def cells_from_anndata(adata: Any, features: str = "X", spatial_key: str = "spatial",
                       sample_key: Optional[str] = None, label_key: Optional[str] = None,
                       condition_keys: Optional[Sequence[str]] = None) -> CellArrays:
    """The cells of `adata`: features from X (dense or sparse; feature names
    = var_names) or from obsm[KEY] with features="obsm:KEY" (names: the
    columns of a DataFrame, otherwise none); coordinates from
    obsm[spatial_key]; sample ids and labels from obs columns (as strings).
    condition_keys: obs columns and "obsm:KEY" vectors encoded into condition
    vectors (wfm_client.conditions: categorical one-hot, numeric as is,
    concatenated); one key naming a non-float obs column is label_key=KEY
    (discrete labels, as `wfm upload --condition-key KEY`). Raises KeyError
    for a missing key and ValueError for a bad shape or value."""
    n = int(adata.n_obs)
    if n < 1:
        raise ValueError("adata: no cells (n_obs is 0)")
    if isinstance(label_key, (list, tuple)):  # the contract's 6th argument: condition_keys
        if condition_keys is not None:
            raise ValueError("pass label_key or condition_keys, not both")
        label_key, condition_keys = None, label_key
    conditions, condition_columns = None, None
    if condition_keys is not None:
        keys = [condition_keys] if isinstance(condition_keys, str) else list(condition_keys)
        if label_key is not None and keys != [label_key]:
            raise ValueError("pass label_key or condition_keys, not both")
        single_label = (len(keys) == 1 and not keys[0].startswith("obsm:")
                        and keys[0] in adata.obs.columns
                        and getattr(adata.obs[keys[0]].dtype, "kind", "") != "f")
        if single_label:  # one label column: discrete labels, as label_key
            label_key = keys[0]
        elif keys:
            conditions, condition_columns = encode_conditions(adata, keys)
    feature_names: Optional[List[str]] = None
    if features == "X":
        matrix = adata.X
        if matrix is None:
            raise ValueError("features='X': adata.X is empty")
        feature_names = [str(v) for v in adata.var_names]
    elif features.startswith("obsm:") and len(features) > 5:
        key = features[5:]
        if key not in adata.obsm:
            raise KeyError(f"features={features!r}: no obsm[{key!r}] (obsm has: "
                           f"{', '.join(adata.obsm.keys()) or 'no keys'})")
        matrix = adata.obsm[key]
        if hasattr(matrix, "columns"):  # a DataFrame: its columns name the features
            feature_names = [str(c) for c in matrix.columns]
            matrix = matrix.to_numpy()
    else:
        raise ValueError(f"features={features!r}: use 'X' or 'obsm:KEY'")
    if len(matrix.shape) != 2 or matrix.shape[0] != n or matrix.shape[1] < 1:
        raise ValueError(f"features={features!r}: shape {tuple(matrix.shape)}; needs [{n}, f]")
    dim = int(matrix.shape[1])

    def rows(start: int, end: int) -> np.ndarray:
        block = matrix[start:end]
        if hasattr(block, "toarray"):  # scipy sparse
            block = block.toarray()
        return np.ascontiguousarray(np.asarray(block), dtype=np.float32)

    if spatial_key not in adata.obsm:
        raise KeyError(f"spatial_key={spatial_key!r}: no obsm[{spatial_key!r}] (obsm has: "
                       f"{', '.join(adata.obsm.keys()) or 'no keys'})")
    coords = np.ascontiguousarray(np.asarray(adata.obsm[spatial_key]), dtype=np.float32)
    # Every column is a coordinate: 2 for tissue sections, 3 for 3-D tissue.
    if (coords.ndim != 2 or coords.shape[0] != n
            or not 1 <= coords.shape[1] <= MAX_SPATIAL_DIM):
        raise ValueError(f"spatial_key={spatial_key!r}: obsm[{spatial_key!r}] has shape "
                         f"{coords.shape}; needs [{n}, 2] or [{n}, 3] (1 to "
                         f"{MAX_SPATIAL_DIM} columns)")
    samples = _obs_strings(adata, sample_key, "sample_key") if sample_key is not None else None
    labels = _obs_strings(adata, label_key, "label_key") if label_key is not None else None
    return CellArrays(n, dim, rows, coords, samples, labels, feature_names, conditions,
                      condition_columns)


def niches_to_anndata(points: np.ndarray, offsets: np.ndarray, labels: Any,
                      feature_names: Optional[Sequence[str]], uns: Optional[dict] = None) -> Any:
    """Generated niches as an AnnData: one row per generated cell (X =
    points [P, d]), obs["niche"] the niche's index (0..C-1) and, for a
    labelled model, obs["condition"] the niche's label (categorical) or, for
    condition vectors, obsm["condition"] [P, k]; var_names the model's
    feature names (else "0".."d-1"); uns["wfm"] what generated it."""
    import anndata
    import pandas as pd

    points = np.asarray(points, dtype=np.float32)
    offsets = np.asarray(offsets, dtype=np.int64)
    sizes = np.diff(offsets)
    niche = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    obs = pd.DataFrame({"niche": niche},
                       index=[f"niche{c}_cell{i}" for c, s in enumerate(sizes) for i in range(s)])
    obsm = {}
    if labels is not None:
        if isinstance(labels, np.ndarray):
            obsm["condition"] = np.repeat(labels.astype(np.float32), sizes, axis=0)
        else:
            obs["condition"] = pd.Categorical(np.repeat(np.asarray(labels, dtype=object), sizes))
    dim = points.shape[1]
    names = list(feature_names) if feature_names else [str(i) for i in range(dim)]
    if len(names) != dim:
        raise ValueError(f"feature_names: {len(names)} names for dimension {dim}")
    var = pd.DataFrame(index=pd.Index(names, dtype=str))
    return anndata.AnnData(X=points, obs=obs, var=var, obsm=obsm or None,
                           uns={"wfm": dict(uns or {})})
