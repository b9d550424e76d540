"""Condition vectors from named columns (no gRPC here), as `wfm upload
--condition-key` and `wfm sample --condition key=value,...` make them:

* a categorical or string obs column is one-hot over its categories (a
  categorical column's own order; the sorted distinct texts of a string
  column);
* an integer, float or bool obs column is its value as is (width 1; bools
  0/1; values are not standardised);
* "obsm:KEY" is the row of obsm[KEY] as is (width = its columns).

The parts are concatenated in the order of the keys; the encoding (one
ConditionColumn per key: name, kind, categories, width, offset) is stored
with the data set and returned with the models trained on it."""

from typing import Any, Dict, List, Mapping, NamedTuple, Sequence, Tuple

import numpy as np


class ConditionColumn(NamedTuple):
    """One column of an encoding: values [offset, offset + width) of the
    vector. kind: "categorical", "numeric" or "obsm"."""
    name: str
    kind: str
    categories: Tuple[str, ...]
    width: int
    offset: int

    @property
    def key(self) -> str:
        """How the column is named at sampling: NAME, or obsm:NAME."""
        return f"obsm:{self.name}" if self.kind == "obsm" else self.name


def obs_column(adata: Any, key: str, what: str) -> Any:
    """adata.obs[key], every cell with a value; KeyError (naming `what`
    and the columns there are) for a missing column, ValueError for a
    missing value."""
    if key not in adata.obs.columns:
        raise KeyError(f"{what}={key!r}: no obs column {key!r} (obs has: "
                       f"{', '.join(map(str, adata.obs.columns)) or 'no columns'})")
    column = adata.obs[key]
    if column.isna().any():
        first = int(np.flatnonzero(column.isna().to_numpy())[0])
        raise ValueError(f"{what}={key!r}: obs[{key!r}] is missing for cell {first} "
                         f"({adata.obs_names[first]!r}); every cell needs a value")
    return column


def _column_values(adata: Any, key: str) -> Tuple[ConditionColumn, np.ndarray]:
    """One key's column (offset 0) and its [n, width] float32 values."""
    what = f"condition_keys: {key!r}"
    if key.startswith("obsm:"):
        name = key[5:]
        if not name or name not in adata.obsm:
            raise KeyError(f"{what}: no obsm[{name!r}] (obsm has: "
                           f"{', '.join(adata.obsm.keys()) or 'no keys'})")
        matrix = adata.obsm[name]
        matrix = matrix.to_numpy() if hasattr(matrix, "to_numpy") else matrix
        matrix = matrix.toarray() if hasattr(matrix, "toarray") else matrix
        values = np.asarray(matrix, dtype=np.float32)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2 or values.shape[0] != adata.n_obs or values.shape[1] < 1:
            raise ValueError(f"{what}: shape {values.shape}; needs [{adata.n_obs}, k]")
        if not np.isfinite(values).all():
            raise ValueError(f"{what}: values must be finite")
        return ConditionColumn(name, "obsm", (), values.shape[1], 0), values
    column = obs_column(adata, key, "condition_keys")
    if str(column.dtype) == "category" or column.dtype == object or str(column.dtype) == "string":
        if str(column.dtype) == "category":
            categories = [str(c) for c in column.cat.categories]
            codes = column.cat.codes.to_numpy().astype(np.int64)
        else:
            texts = column.astype(str).to_numpy()
            categories = sorted(set(texts.tolist()))
            index = {c: i for i, c in enumerate(categories)}
            codes = np.asarray([index[t] for t in texts], dtype=np.int64)
        values = np.zeros((len(codes), len(categories)), dtype=np.float32)
        values[np.arange(len(codes)), codes] = 1.0
        return ConditionColumn(key, "categorical", tuple(categories), len(categories), 0), values
    values = column.to_numpy().astype(np.float32)[:, None]
    if not np.isfinite(values).all():
        raise ValueError(f"{what}: values must be finite")
    return ConditionColumn(key, "numeric", (), 1, 0), values


def encode_conditions(adata: Any, keys: Sequence[str]) -> Tuple[np.ndarray, List[ConditionColumn]]:
    """The [n_obs, k] float32 condition vectors of `keys` (obs columns and
    obsm:KEY) and their encoding, columns in the order of the keys."""
    if len(set(keys)) != len(keys):
        raise ValueError(f"condition_keys={list(keys)!r}: a key is given twice")
    parts, columns, offset = [], [], 0
    for key in keys:
        column, values = _column_values(adata, key)
        columns.append(column._replace(offset=offset))
        parts.append(values)
        offset += column.width
    return np.concatenate(parts, axis=1), columns


def condition_vector(columns: Sequence[ConditionColumn], condition: Mapping[str, Any]) -> np.ndarray:
    """The vector of `condition` ({key: value}: a category, a number, or a
    sequence of numbers for obsm:KEY) under a model's encoding. Every column
    is needed; KeyError for an unknown or missing key, ValueError for an
    unknown category or a value of the wrong type or length."""
    known = ", ".join(c.key for c in columns)
    if not columns:
        raise ValueError("condition: the model's conditions have no named columns; pass the vector")
    by_key: Dict[str, ConditionColumn] = {c.key: c for c in columns}
    for key in condition:
        if key not in by_key:
            raise KeyError(f"condition: unknown key {key!r}; the model's columns: {known}")
    width = max(c.offset + c.width for c in columns)
    vector = np.zeros(width, dtype=np.float32)
    for c in columns:
        if c.key not in condition:
            raise KeyError(f"condition: missing key {c.key!r}; give every column: {known}")
        value = condition[c.key]
        if c.kind == "categorical":
            text = value.decode() if isinstance(value, bytes) else str(value)
            if text not in c.categories:
                raise ValueError(f"condition: {c.key}={text!r} is not a category; one of "
                                 f"{', '.join(c.categories)}")
            vector[c.offset + c.categories.index(text)] = 1.0
            continue
        try:
            values = np.asarray(value, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"condition: {c.key}={value!r} is not numeric") from None
        if values.size != c.width or not np.isfinite(values).all():
            raise ValueError(f"condition: {c.key} needs {c.width} finite number(s), got {value!r}")
        vector[c.offset:c.offset + c.width] = values
    return vector


def decode_condition(columns: Sequence[ConditionColumn], vector: np.ndarray) -> Dict[str, Any]:
    """{key: value} of a vector: the category with the largest value, the
    number, or the obsm row."""
    out: Dict[str, Any] = {}
    for c in columns:
        part = np.asarray(vector[c.offset:c.offset + c.width], dtype=np.float32)
        if c.kind == "categorical":
            out[c.key] = c.categories[int(np.argmax(part))]
        elif c.kind == "numeric":
            out[c.key] = float(part[0])
        else:
            out[c.key] = part
    return out
