"""A small Python client of the wfm service (Wasserstein Flow Matching).

Part of the wfm_client package (python/; `pip install ./python` generates
the gRPC stubs from proto/wfm/v1 into it). Needs grpcio, protobuf and
numpy (Debian: python3-grpcio, python3-protobuf, python3-numpy); AnnData
in and out needs anndata (python3-anndata), progress bars tqdm
(python3-tqdm, optional).

    from wfm_client import Client
    with Client("localhost:50051") as wfm:
        wfm.upload_point_clouds("shapes", clouds, labels=labels)
        job = wfm.train("shapes", "shapes-wfm", steps=300, watch=True,
                        on_update=lambda j: print(j.step, j.loss))
        samples = wfm.sample("shapes-wfm", num=16, label="ring")
        samples.clouds[0]          # numpy [n, d]

Errors the server returns are raised as WfmError (code name, message and
method); bad local input as ValueError / TypeError before anything is sent.
"""

import collections
import ipaddress
import threading
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

import grpc
import numpy as np

from wfm_client._stubs import types_pb2, wfm_service_pb2, wfm_service_pb2_grpc
from wfm_client.anndata_io import cells_from_anndata, niches_to_anndata
from wfm_client.conditions import (ConditionColumn, condition_vector, decode_condition,
                                   encode_conditions)
from wfm_client.progress import Progress

__all__ = ["Client", "WfmError", "Samples", "GaussianSamples"]

SERVICE_NAME = "wfm.v1.WfmService"
CHUNK_BYTES = 2_000_000  # payload per upload message (~2 MB)
FIRST_CONNECTION_WAIT = 3.0  # seconds the first call waits for the connection

_UNARY_TIMEOUT = 30.0
_LONG_TIMEOUT = 1800.0



def _set_tolerances(request, rtol, atol):
    """The adaptive solver's tolerances on a sampling request (unset = the server's)."""
    if rtol is not None:
        request.rtol = rtol
    if atol is not None:
        request.atol = atol


_PRIORITIES = {
    "low": wfm_service_pb2.SAMPLING_PRIORITY_LOW,
    "normal": wfm_service_pb2.SAMPLING_PRIORITY_NORMAL,
    "high": wfm_service_pb2.SAMPLING_PRIORITY_HIGH,
}
MAX_QUEUE_TIMEOUT = 86400.0  # seconds, the server's limit


def _set_queue_policy(request, priority, queue_timeout):
    """priority ("low", "normal", "high") and queue_timeout (seconds in (0,
    86400]; None = no limit) on a sampling request; ValueError otherwise."""
    if priority not in _PRIORITIES:
        raise ValueError(f"priority={priority!r}: expected one of {', '.join(_PRIORITIES)}")
    request.priority = _PRIORITIES[priority]
    if queue_timeout is not None:
        timeout = float(queue_timeout)
        if not 0 < timeout <= MAX_QUEUE_TIMEOUT:
            raise ValueError(f"queue_timeout={queue_timeout!r}: expected seconds in "
                             f"(0, {MAX_QUEUE_TIMEOUT:g}] (None = no queue timeout)")
        request.queue_timeout_seconds = timeout

class WfmError(Exception):
    """An error the server returned: `code` is the gRPC code name
    ("INVALID_ARGUMENT", "NOT_FOUND", ...), `method` the RPC."""

    def __init__(self, code, message, method):
        super().__init__(f"{message} ({code} from {method})")
        self.code = code
        self.message = message
        self.method = method


# Generated point clouds: points [P, d] float32, offsets [C+1] int64, labels
# (list of C strings, a [C, k] float32 array, or None), clouds (list of C
# [n_c, d] views into points), trajectory ([frames, P, d] or None),
# network_evaluations (the NFE the ODE solver spent), version (the model
# version that generated them).
Samples = collections.namedtuple(
    "Samples", "points offsets labels clouds trajectory network_evaluations version",
    defaults=(0, 0))
# Generated Gaussians: means [C, d], covs [C, d, d] (float64), labels (names,
# or condition vectors [C, condition_dim] of a continuous model) or None,
# network_evaluations, version.
GaussianSamples = collections.namedtuple(
    "GaussianSamples", "means covs labels network_evaluations version", defaults=(0, 0))

_TERMINAL = (types_pb2.SUCCEEDED, types_pb2.FAILED, types_pb2.CANCELLED)


def _option_value(type_name, value, key):
    """`value` as the Python type of an option of `type_name`."""
    if type_name == "bool":
        if isinstance(value, str):
            text = value.lower()
            if text in ("on", "true", "yes", "1"):
                return True
            if text in ("off", "false", "no", "0"):
                return False
            raise ValueError(f"{key}={value!r}: expected on or off")
        return bool(value)
    if type_name in ("int", "uint"):
        if isinstance(value, bool) or int(value) != value:
            raise ValueError(f"{key}={value!r}: expected an integer")
        return int(value)
    if type_name == "double":
        if isinstance(value, bool):
            raise ValueError(f"{key}={value!r}: expected a number")
        return float(value)
    return str(value)


def _set_path(message, path, value):
    """Sets the field at dotted `path` (e.g. "network.width") of `message`."""
    *parents, leaf = path.split(".")
    for name in parents:
        message = getattr(message, name)
    setattr(message, leaf, value)


def _varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_CONDITION_KINDS = {"categorical": types_pb2.CONDITION_KIND_CATEGORICAL,
                    "numeric": types_pb2.CONDITION_KIND_NUMERIC,
                    "obsm": types_pb2.CONDITION_KIND_OBSM}


def condition_columns(info: Any) -> List[ConditionColumn]:
    """The condition encoding of a Dataset or ModelInfo (its
    condition_columns) as wfm_client.conditions.ConditionColumn tuples."""
    names = {v: k for k, v in _CONDITION_KINDS.items()}
    return [ConditionColumn(c.name, names.get(c.kind, "unknown"), tuple(c.categories),
                            int(c.width), int(c.offset)) for c in info.condition_columns]


def _add_condition_columns(header, columns):
    for c in columns or []:
        header.condition_columns.add(name=c.name, kind=_CONDITION_KINDS[c.kind],
                                     categories=list(c.categories), width=c.width,
                                     offset=c.offset)


def _labels_to_strings(labels, count, what):
    if labels is None:
        return None
    labels = list(labels)
    if len(labels) != count:
        raise ValueError(f"labels: {len(labels)} labels for {count} {what}; needs one per item")
    out = []
    for value in labels:
        if isinstance(value, (bytes, np.bytes_)):
            value = value.decode()
        if isinstance(value, (float, np.floating)):
            raise TypeError("labels: discrete labels are strings or integers; "
                            "pass float condition vectors as conditions=")
        out.append(str(int(value)) if isinstance(value, (int, np.integer)) else str(value))
    return out


def _condition_rows(names, conditions, count, items, header, columns):
    """The [count, k] float32 condition vectors of an upload (None without),
    with the header set to continuous labels and their encoding `columns`."""
    if conditions is None:
        return None
    if names is not None:
        raise TypeError("pass labels or conditions, not both")
    cond = np.asarray(conditions, dtype=np.float32)
    cond = cond.reshape(len(cond), -1) if cond.ndim == 1 else cond
    if cond.ndim != 2 or cond.shape[0] != count:
        raise ValueError(f"conditions: {cond.shape[0]} rows for {count} {items}")
    _finite("conditions", cond)
    header.label_type = types_pb2.LABEL_TYPE_CONTINUOUS
    header.condition_dim = cond.shape[1]
    _add_condition_columns(header, columns)
    return cond


def _finite(name, array):
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(f"{name}{list(bad)} is not finite; values must be finite")


def _init_clouds(init: Any) -> Tuple[np.ndarray, List[int]]:
    """Given source clouds as (points [P*d] float32, sizes): a sequence of
    [n_i, d] arrays, or points [P, d] with offsets [C+1] (attributes, as a
    Samples, or keys, as np.load of an .npz)."""
    if isinstance(init, Mapping) or hasattr(init, "files"):
        points, offsets = init["points"], init["offsets"]
    elif hasattr(init, "points") and hasattr(init, "offsets"):
        points, offsets = init.points, init.offsets
    else:
        clouds = [np.asarray(c, dtype=np.float32) for c in init]
        if not clouds or any(c.ndim != 2 or c.shape[0] < 1 for c in clouds):
            raise ValueError("init: needs one [n_i, d] array per sample (n_i >= 1)")
        if len({c.shape[1] for c in clouds}) != 1:
            raise ValueError("init: every cloud needs the same dimension")
        points = np.concatenate(clouds)
        offsets = np.concatenate([[0], np.cumsum([c.shape[0] for c in clouds])])
    points = np.ascontiguousarray(points, dtype=np.float32)
    offsets = np.asarray(offsets, dtype=np.int64).ravel()
    if (points.ndim != 2 or offsets.size < 2 or offsets[0] != 0
            or offsets[-1] != points.shape[0] or np.any(np.diff(offsets) < 1)):
        raise ValueError(f"init: points {points.shape} and offsets {offsets.shape} need [P, d] "
                         "and [C+1] from 0 to P, every cloud non-empty")
    _finite("init", points)
    return points.ravel(), np.diff(offsets).tolist()


def _init_gaussians(init: Any) -> Tuple[np.ndarray, np.ndarray]:
    """Given source Gaussians as (means [n, d], covs [n, d, d]) float64."""
    if isinstance(init, Mapping) or hasattr(init, "files"):
        means, covs = init["means"], init["covs"]
    elif hasattr(init, "means") and hasattr(init, "covs"):
        means, covs = init.means, init.covs
    else:
        means, covs = init
    means = np.asarray(means, dtype=np.float64)
    covs = np.asarray(covs, dtype=np.float64)
    if (means.ndim != 2 or covs.ndim != 3 or covs.shape != (means.shape[0], means.shape[1],
                                                            means.shape[1])):
        raise ValueError(f"init: means {means.shape} and covs {covs.shape} need [n, d] and "
                         "[n, d, d]")
    return means, covs


_TARGET_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:")


def _ip_version(address: str) -> int:
    """4 for "a.b.c.d:port", 6 for "[v6]:port", else 0."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or len(port) > 5:
        return 0
    try:
        if host.startswith("[") and host.endswith("]"):
            ipaddress.IPv6Address(host[1:-1])
            return 6
        ipaddress.IPv4Address(host)
        return 4
    except ValueError:
        return 0


def channel_target(address: str) -> str:
    """The gRPC target of a server address, as the wfm tool reads --server: a
    gRPC target ("dns:///name:port", "ipv4:...", "ipv6:...", "unix:...") and
    "host:port" stay as they are; a comma-separated list of "a.b.c.d:port"
    (or "[v6]:port") addresses becomes "ipv4:a,b" ("ipv6:a,b"). ValueError
    for an empty address and for a list with host names, missing ports or
    both IP versions."""
    address = address.strip()
    if not address:
        raise ValueError("server address is empty; expected host:port")
    if address.startswith(_TARGET_SCHEMES) or "," not in address:
        return address
    parts = [p.strip() for p in address.split(",")]
    versions = {_ip_version(p) for p in parts}
    if 0 in versions or len(versions) != 1:
        raise ValueError(f"server address {address!r}: a comma-separated list takes IP "
                         "addresses of one version with ports (a.b.c.d:port or [v6]:port); "
                         "for a name with several addresses use dns:///NAME:PORT")
    return ("ipv4:" if versions == {4} else "ipv6:") + ",".join(parts)


class Client:
    """A connection to one wfm server. Thread-safe; close() (or `with`) ends it."""

    def __init__(self, address: str = "localhost:50051", token: Optional[str] = None,
                 tls: bool = False, tls_ca: Optional[str] = None,
                 timeout: float = _UNARY_TIMEOUT, max_receive_bytes: int = 256 << 20,
                 load_balancing: str = "round_robin"):
        """Connects to the wfm server at `address`: "host:port", a gRPC target
        ("dns:///NAME:PORT" balances over every address of the name) or a
        comma-separated list of IP:port addresses (channel_target). token: the
        bearer token (--auth-token-file of the server); tls: connect with TLS
        (system roots, or the CA certificate file tls_ca, which implies TLS).
        timeout: seconds per unary call. load_balancing: "round_robin" (calls
        spread over every address) or "pick_first" (one connection)."""
        if load_balancing not in ("round_robin", "pick_first"):
            raise ValueError(f"load_balancing {load_balancing!r}: expected round_robin or "
                             "pick_first")
        target = channel_target(address)
        options = [("grpc.max_receive_message_length", max_receive_bytes),
                   ("grpc.max_send_message_length", -1),
                   ("grpc.lb_policy_name", load_balancing)]
        if tls or tls_ca:
            root = None
            if tls_ca:
                with open(tls_ca, "rb") as f:
                    root = f.read()
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root), options)
        else:
            self._channel = grpc.insecure_channel(target, options)
        self._service = wfm_service_pb2_grpc.WfmServiceStub(self._channel)
        self._first_connection = threading.Lock()
        self._connected_once = False
        self._metadata = [("authorization", f"Bearer {token}")] if token else []
        self._timeout = timeout
        self._options = None  # training_options(), fetched on first use
        self.address = address
        self.server = address  # the name before 0.2

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ plumbing

    def _await_first_connection(self):
        # The first call waits up to FIRST_CONNECTION_WAIT seconds for the
        # connection (as the wfm tool does): gRPC 1.51 can fail a fresh
        # connection attempt spuriously (grpc/grpc#35064), and a call on a
        # channel whose only attempt failed fails at once. Not connected by
        # then: the call itself reports why.
        with self._first_connection:
            if self._connected_once:
                return
            self._connected_once = True
            try:
                grpc.channel_ready_future(self._channel).result(timeout=FIRST_CONNECTION_WAIT)
            except grpc.FutureTimeoutError:
                pass

    @property
    def _stub(self):
        self._await_first_connection()
        return self._service

    def _call(self, method, request, timeout=None):
        try:
            return getattr(self._stub, method)(request, timeout=timeout or self._timeout,
                                               metadata=self._metadata)
        except grpc.RpcError as e:
            raise WfmError(e.code().name, e.details(), method) from None

    def health(self, service: str = SERVICE_NAME) -> str:
        """The grpc.health.v1 status: "SERVING", "NOT_SERVING", "UNKNOWN" or
        "SERVICE_UNKNOWN"."""
        self._await_first_connection()
        check = self._channel.unary_unary("/grpc.health.v1.Health/Check",
                                          request_serializer=lambda b: b,
                                          response_deserializer=lambda b: b)
        request = b"" if not service else b"\x0a" + _varint(len(service)) + service.encode()
        try:
            response = check(request, timeout=5.0, metadata=self._metadata)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return "SERVICE_UNKNOWN"
            raise WfmError(e.code().name, e.details(), "Health.Check") from None
        status = response[1] if len(response) >= 2 and response[0] == 0x08 else 0
        return {1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}.get(status, "UNKNOWN")

    # ----------------------------------------------------------- data sets

    def _upload(self, header, chunks):
        failed = []  # an exception while making the chunks (bad local data)

        def requests():
            yield wfm_service_pb2.UploadDatasetRequest(header=header)
            try:
                yield from chunks
            except Exception as e:
                failed.append(e)
                raise
        try:
            return self._stub.UploadDataset(requests(), timeout=_LONG_TIMEOUT,
                                            metadata=self._metadata)
        except grpc.RpcError as e:
            if failed:
                raise failed[0] from None
            raise WfmError(e.code().name, e.details(), "UploadDataset") from None

    def upload_point_clouds(self, name: str, clouds: Optional[Sequence[np.ndarray]] = None, *,
                            points: Optional[np.ndarray] = None,
                            offsets: Optional[np.ndarray] = None,
                            labels: Optional[Sequence[Any]] = None,
                            conditions: Optional[np.ndarray] = None, description: str = "",
                            overwrite: bool = False,
                            chunk_bytes: int = CHUNK_BYTES,
                            condition_columns: Optional[Sequence[ConditionColumn]] = None
                            ) -> "types_pb2.Dataset":
        """Uploads point clouds: either `clouds`, a list of [n_c, d] arrays, or
        `points` [P, d] with `offsets` [C+1]. `labels`: C strings/integers
        (discrete); `conditions`: [C, k] floats (continuous), optionally with
        their encoding `condition_columns` (wfm_client.conditions; then
        sample_niches takes condition={key: value})."""
        if clouds is not None:
            if points is not None or offsets is not None:
                raise TypeError("pass clouds or points + offsets, not both")
            clouds = [np.asarray(c, dtype=np.float32) for c in clouds]
            if not clouds or any(c.ndim != 2 for c in clouds):
                raise ValueError("clouds: needs a non-empty list of [n, d] arrays")
            points = np.concatenate(clouds)
            offsets = np.concatenate([[0], np.cumsum([len(c) for c in clouds])])
        if points is None or offsets is None:
            raise TypeError("pass clouds, or points and offsets")
        points = np.ascontiguousarray(points, dtype=np.float32)
        offsets = np.asarray(offsets, dtype=np.int64)
        if points.ndim != 2 or points.shape[1] < 1:
            raise ValueError(f"points: shape {points.shape}; needs [P, d]")
        sizes = np.diff(offsets)
        if offsets.ndim != 1 or len(offsets) < 2 or offsets[0] != 0 or offsets[-1] != len(points) \
                or np.any(sizes < 1):
            raise ValueError("offsets: needs [C+1] increasing values from 0 to P, no empty cloud")
        _finite("points", points)
        count, dim = len(sizes), points.shape[1]
        names = _labels_to_strings(labels, count, "clouds")
        header = wfm_service_pb2.DatasetHeader(
            name=name, kind=types_pb2.POINT_CLOUDS, dim=dim, description=description,
            overwrite=overwrite, label_type=types_pb2.LABEL_TYPE_NONE)
        if names is not None:
            header.label_type = types_pb2.LABEL_TYPE_DISCRETE
        cond = _condition_rows(names, conditions, count, "clouds", header, condition_columns)

        def chunks():
            start = 0
            while start < count:
                end, size = start, 0
                while end < count and (end == start or size + sizes[end] * dim * 4 <= chunk_bytes):
                    size += sizes[end] * dim * 4
                    end += 1
                chunk = wfm_service_pb2.PointCloudChunk(
                    sizes=sizes[start:end].tolist(),
                    points=points[offsets[start]:offsets[end]].ravel().tolist())
                if names is not None:
                    chunk.labels.extend(names[start:end])
                if cond is not None:
                    chunk.conditions.extend(cond[start:end].ravel().tolist())
                yield wfm_service_pb2.UploadDatasetRequest(clouds=chunk)
                start = end
        return self._upload(header, chunks())

    def upload_gaussians(self, name: str, means: np.ndarray, covs: np.ndarray,
                         labels: Optional[Sequence[Any]] = None, description: str = "",
                         overwrite: bool = False,
                         chunk_bytes: int = CHUNK_BYTES, *,
                         conditions: Optional[np.ndarray] = None,
                         condition_columns: Optional[Sequence[ConditionColumn]] = None,
                         adata: Any = None,
                         condition_keys: Optional[Sequence[str]] = None) -> "types_pb2.Dataset":
        """Uploads Gaussians: means [C, d], covs [C, d, d] symmetric positive
        definite, optional C discrete labels, or condition vectors:
        `conditions` [C, k] floats (continuous), optionally with their
        encoding `condition_columns`, or `condition_keys` (obs columns and
        "obsm:KEY", encoded as upload_anndata encodes them, the encoding
        stored with the data set) of `adata`, an AnnData whose rows are the
        C Gaussians. Models trained on them take condition={key: value} in
        sample_gaussians()."""
        means = np.ascontiguousarray(means, dtype=np.float64)
        covs = np.ascontiguousarray(covs, dtype=np.float64)
        if means.ndim != 2 or covs.shape != (means.shape[0], means.shape[1], means.shape[1]):
            raise ValueError(f"means {means.shape} and covs {covs.shape}: need [C, d] and [C, d, d]")
        _finite("means", means)
        _finite("covs", covs)
        try:
            np.linalg.cholesky(covs)
        except np.linalg.LinAlgError:
            raise ValueError("covs: not all positive definite") from None
        count, dim = means.shape
        names = _labels_to_strings(labels, count, "Gaussians")
        header = wfm_service_pb2.DatasetHeader(
            name=name, kind=types_pb2.GAUSSIANS, dim=dim, description=description,
            overwrite=overwrite,
            label_type=types_pb2.LABEL_TYPE_DISCRETE if names else types_pb2.LABEL_TYPE_NONE)
        if condition_keys is not None:
            if conditions is not None or condition_columns is not None:
                raise TypeError("pass condition_keys (with adata) or conditions, not both")
            if adata is None:
                raise TypeError("condition_keys: needs adata, an AnnData with a row per Gaussian")
            if adata.n_obs != count:
                raise ValueError(f"adata: {adata.n_obs} rows for {count} Gaussians")
            conditions, condition_columns = encode_conditions(adata, list(condition_keys))
        elif adata is not None:
            raise TypeError("adata: only used with condition_keys")
        cond = _condition_rows(names, conditions, count, "Gaussians", header, condition_columns)
        width = cond.shape[1] if cond is not None else 0
        per = max(1, chunk_bytes // ((dim + dim * dim) * 8 + width * 4))

        def chunks():
            for start in range(0, count, per):
                end = min(count, start + per)
                chunk = wfm_service_pb2.GaussianChunk(means=means[start:end].ravel().tolist(),
                                                      covs=covs[start:end].ravel().tolist())
                if names is not None:
                    chunk.labels.extend(names[start:end])
                if cond is not None:
                    chunk.conditions.extend(cond[start:end].ravel().tolist())
                yield wfm_service_pb2.UploadDatasetRequest(gaussians=chunk)
        return self._upload(header, chunks())

    def upload_cells(self, name: str, features: np.ndarray, coords: np.ndarray,
                     sample_ids: Optional[Sequence[Any]] = None,
                     labels: Optional[Sequence[Any]] = None, description: str = "",
                     overwrite: bool = False, chunk_bytes: int = CHUNK_BYTES,
                     feature_names: Optional[Sequence[str]] = None,
                     progress: bool = False) -> "types_pb2.Dataset":
        """Uploads spatial cells: features [n, f], coords [n, 2] (tissue
        sections) or [n, 3] (3-D tissue; 1 to 16 columns), optional
        sample ids and labels (one per cell) and feature names (f of them).
        The server builds the niches."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        coords = np.ascontiguousarray(coords, dtype=np.float32)
        if features.ndim != 2 or coords.ndim != 2 or coords.shape[0] != features.shape[0]:
            raise ValueError(f"features {features.shape} and coords {coords.shape}: "
                             "need [n, f] and [n, 2] or [n, 3]")
        _finite("features", features)  # before anything is sent
        n, dim = features.shape
        return self._upload_cell_rows(
            name, n, dim, lambda start, end: features[start:end], coords,
            _labels_to_strings(sample_ids, n, "cells"), _labels_to_strings(labels, n, "cells"),
            None if feature_names is None else [str(f) for f in feature_names],
            description, overwrite, chunk_bytes, progress)

    def _upload_cell_rows(self, name, n, dim, rows, coords, samples, names, feature_names,
                          description, overwrite, chunk_bytes, progress, conditions=None,
                          columns=None):
        """Streams n cells whose features rows(start, end) gives [end-start,
        dim] float32, in chunks of about chunk_bytes; conditions [n, k] with
        their encoding `columns` (ConditionColumn) when given."""
        if coords.ndim != 2 or coords.shape[0] != n or not 1 <= coords.shape[1] <= 16:
            raise ValueError(f"coords {coords.shape}: needs [{n}, 2] or [{n}, 3] (1 to 16 columns)")
        _finite("coords", coords)
        spatial_dim = int(coords.shape[1])
        if feature_names is not None and len(feature_names) != dim:
            raise ValueError(f"feature_names: {len(feature_names)} names for {dim} features")
        header = wfm_service_pb2.DatasetHeader(
            name=name, kind=types_pb2.SPATIAL_CELLS, dim=dim, description=description,
            overwrite=overwrite,
            label_type=types_pb2.LABEL_TYPE_DISCRETE if names else types_pb2.LABEL_TYPE_NONE)
        if feature_names:
            header.feature_names.extend(feature_names)
        if spatial_dim != 2:  # 0 means 2, which servers before 3-D tissue expect
            header.spatial_dim = spatial_dim
        width = 0
        if conditions is not None:
            width = int(conditions.shape[1])
            header.label_type = types_pb2.LABEL_TYPE_CONTINUOUS
            header.condition_dim = width
            _add_condition_columns(header, columns)
        per = max(1, chunk_bytes // ((dim + spatial_dim + width) * 4 + 32))

        def chunks():
            with Progress(progress, n, f"upload {name}", "cells") as bar:
                for start in range(0, n, per):
                    end = min(n, start + per)
                    block = rows(start, end)
                    if block.shape != (end - start, dim):
                        raise ValueError(f"features[{start}:{end}]: shape {block.shape}, "
                                         f"needs [{end - start}, {dim}]")
                    _finite(f"features[{start}:{end}]", block)
                    chunk = wfm_service_pb2.CellChunk(features=block.ravel().tolist(),
                                                      coords=coords[start:end].ravel().tolist())
                    if samples is not None:
                        chunk.sample_ids.extend(samples[start:end])
                    if names is not None:
                        chunk.labels.extend(names[start:end])
                    if conditions is not None:
                        chunk.conditions.extend(conditions[start:end].ravel().tolist())
                    yield wfm_service_pb2.UploadDatasetRequest(cells=chunk)
                    bar.update_to(end)
        return self._upload(header, chunks())

    def datasets(self) -> List["types_pb2.Dataset"]:
        """Every stored data set, sorted by name."""
        return list(self._call("ListDatasets", wfm_service_pb2.ListDatasetsRequest()).datasets)

    def dataset(self, name: str) -> "types_pb2.Dataset":
        """The data set `name` (WfmError NOT_FOUND when there is none)."""
        return self._call("GetDataset", wfm_service_pb2.GetDatasetRequest(name=name))

    def delete_dataset(self, name: str) -> None:
        """Deletes the data set `name`."""
        self._call("DeleteDataset", wfm_service_pb2.DeleteDatasetRequest(name=name))

    # ------------------------------------------------------------ training

    def training_options(self) -> List["types_pb2.TrainingOption"]:
        """Every training option the server takes (DescribeTrainingOptions,
        fetched once): TrainingOption messages with name, group, help, type
        and, per family, the TrainingConfig field path, default and rule.
        train() takes each as a keyword: the name with '_' for '-'."""
        if self._options is None:
            reply = self._call("DescribeTrainingOptions",
                               wfm_service_pb2.DescribeTrainingOptionsRequest())
            self._options = list(reply.options)
        return self._options

    def training_config(self, family: str, **options: Any) -> "types_pb2.TrainingConfig":
        """The TrainingConfig that train() sends for `family` ("pointcloud" or
        "gaussian") and keyword options (None values are left out). Raises
        TypeError for an unknown option and ValueError for an option of the
        other family or a value of the wrong type."""
        if family not in ("pointcloud", "gaussian"):
            raise ValueError(f"family {family!r}: choose 'pointcloud' or 'gaussian'")
        family_enum = types_pb2.FAMILY_POINTCLOUD if family == "pointcloud" else types_pb2.FAMILY_GAUSSIAN
        config = types_pb2.TrainingConfig(family=family_enum)
        by_keyword = {o.name.replace("-", "_"): o for o in self.training_options()}
        for key, value in options.items():
            if value is None:
                continue
            option = by_keyword.get(key)
            if option is None:
                raise TypeError(f"train() got an unknown option {key!r} "
                                f"(known: {', '.join(sorted(by_keyword))})")
            field = next((f for f in option.fields if f.family == family_enum), None)
            if field is None:
                raise ValueError(f"{key} does not apply to family {family!r}")
            _set_path(config, field.path, _option_value(option.type, value, key))
        return config

    def train(self, dataset: str, model: str, family: Optional[str] = None, watch: bool = False,
              on_update: Optional[Callable[["types_pb2.TrainingJob"], None]] = None,
              overwrite: bool = False, progress: bool = False,
              init_from_model: Optional[str] = None, init_from_version: int = 0,
              **options: Any) -> "types_pb2.TrainingJob":
        """Starts a training job; options are the `wfm train` flags with
        underscores (steps=, batch=, lr=, emb=, layers=, monge_map=, ...;
        training_options() lists them all). Unset options take the server's
        defaults. family: "pointcloud" or "gaussian" (default: from the data
        set's kind). With watch=True, follows the job (calling on_update(job)
        on every update) and returns its final state; raises WfmError unless
        it SUCCEEDED. progress=True (with watch) shows a progress bar (tqdm when
        installed). init_from_model= fine-tunes: training starts from that
        stored model's weights (init_from_version=, default 0: its serving
        version) instead of a fresh network; the server refuses a base model
        of another family, network shape, data dimension or labels."""
        if family is None:
            family = "gaussian" if self.dataset(dataset).kind == types_pb2.GAUSSIANS else "pointcloud"
        config = self.training_config(family, **options)
        job = self._call("StartTraining", wfm_service_pb2.StartTrainingRequest(
            dataset=dataset, model=model, config=config, overwrite=overwrite,
            init_from_model=init_from_model or "", init_from_version=init_from_version))
        if not watch:
            return job
        with Progress(progress, job.total_steps or None, f"train {model}", "steps") as bar:
            def update(j):
                if j.total_steps:
                    bar.set_total(j.total_steps)
                bar.update_to(j.step, loss=j.loss)
                if on_update is not None:
                    on_update(j)
            final = self.watch(job.id, update)
        if final.state != types_pb2.SUCCEEDED:
            raise WfmError(types_pb2.JobState.Name(final.state),
                           f"training job {final.id} ended {types_pb2.JobState.Name(final.state)}: "
                           f"{final.error}", "WatchTrainingJob")
        return final

    def watch(self, job_id: str,
              on_update: Optional[Callable[["types_pb2.TrainingJob"], None]] = None
              ) -> "types_pb2.TrainingJob":
        """Follows a job until it ends; returns its final TrainingJob."""
        last = None
        try:
            for job in self._stub.WatchTrainingJob(
                    wfm_service_pb2.WatchTrainingJobRequest(id=job_id), metadata=self._metadata):
                last = job
                if on_update is not None:
                    on_update(job)
        except grpc.RpcError as e:
            raise WfmError(e.code().name, e.details(), "WatchTrainingJob") from None
        if last is None or last.state not in _TERMINAL:
            last = self.job(job_id)
        return last

    def job(self, job_id: str) -> "types_pb2.TrainingJob":
        """The training job `job_id`."""
        return self._call("GetTrainingJob", wfm_service_pb2.GetTrainingJobRequest(id=job_id))

    def jobs(self) -> List["types_pb2.TrainingJob"]:
        """Every training job the server knows."""
        return list(self._call("ListTrainingJobs", wfm_service_pb2.ListTrainingJobsRequest()).jobs)

    def cancel(self, job_id: str) -> "types_pb2.TrainingJob":
        """Cancels a queued or running job; returns its state."""
        return self._call("CancelTrainingJob", wfm_service_pb2.CancelTrainingJobRequest(id=job_id))

    # -------------------------------------------------------------- models

    def models(self) -> List["types_pb2.ModelInfo"]:
        """Every model, sorted by name."""
        return list(self._call("ListModels", wfm_service_pb2.ListModelsRequest()).models)

    def model(self, name: str, version: int = 0) -> "types_pb2.ModelInfo":
        """The model `name`: family, dimension, labels, feature names, config
        of `version` (0 = the serving one), with every stored version
        (.versions), the serving and the pinned version and the retention."""
        return self._call("GetModel", wfm_service_pb2.GetModelRequest(name=name, version=version))

    def delete_model(self, name: str, version: int = 0) -> None:
        """Deletes the model `name` (every version), or only `version` of it
        (not the pinned one, nor the only one)."""
        self._call("DeleteModel", wfm_service_pb2.DeleteModelRequest(name=name, version=version))

    def update_model(self, name: str, serving_version: Optional[int] = None,
                     keep_versions: Optional[int] = None) -> "types_pb2.ModelInfo":
        """Pins `serving_version` as the version requests without one get
        (rollback; 0 = unpin: the latest serves) and/or sets the model's
        retention (keep the latest keep_versions versions and the pinned one;
        0 = the server's --keep-versions). None = unchanged. Returns the
        model as model() does."""
        request = wfm_service_pb2.UpdateModelRequest(name=name)
        if serving_version is not None:
            request.serving_version = serving_version
        if keep_versions is not None:
            request.keep_versions = keep_versions
        return self._call("UpdateModel", request)

    def load_model(self, name: str, version: int = 0) -> "types_pb2.ModelInfo":
        """Loads `version` (0 = the serving one) of model `name` into the
        server's memory now, so that the first request does not wait for
        it; the server unloads the least recently used versions beyond its
        --max-loaded-models / --max-loaded-model-mib. Returns the model as
        model() does (.versions[i].loaded says which are in memory)."""
        return self._call("UpdateModel", wfm_service_pb2.UpdateModelRequest(
            name=name, residency=wfm_service_pb2.MODEL_RESIDENCY_LOAD, version=version))

    def unload_model(self, name: str, version: int = 0) -> "types_pb2.ModelInfo":
        """Frees `version` (0 = every version) of model `name` from the
        server's memory. Requests using it finish first; the next request
        loads it again. Returns the model as model() does."""
        return self._call("UpdateModel", wfm_service_pb2.UpdateModelRequest(
            name=name, residency=wfm_service_pb2.MODEL_RESIDENCY_UNLOAD, version=version))

    # ------------------------------------------------------------ sampling

    def sample(self, model: str, num: int, points: int = 0, label: str = "",
               condition: Optional[Sequence[float]] = None, guidance: Optional[float] = None,
               steps: int = 0, seed: int = 0, trajectory: bool = False, solver: str = "",
               rtol: Optional[float] = None, atol: Optional[float] = None,
               progress: bool = False, init: Any = None, priority: str = "normal",
               queue_timeout: Optional[float] = None, version: int = 0) -> Samples:
        """Generates `num` point clouds; returns Samples (numpy arrays).

        version: the model version (0 = the serving one); Samples.version is
        the version that generated them.

        init: given source clouds (the reference's init_noise), one per
        sample: cloud i starts from init's i-th cloud instead of drawn noise,
        so the model transports a given sample. A sequence of [n_i, d]
        arrays, or anything with points [P, d] and offsets [C+1] (a Samples,
        a mapping such as np.load of a `wfm sample --out` .npz). num may be 0
        (= the number of clouds given); points must be 0 or each cloud's size.

        solver: "euler", "midpoint" (the default), "heun", "rk4" or "adaptive"
        (Bogacki–Shampine 3(2); steps is then the step cap, rtol/atol its
        tolerances). Samples.network_evaluations is the NFE spent.
        progress=True shows a progress bar over the clouds received.

        priority: "low", "normal" or "high", the request's place in the
        model's sampling queue (higher ones are batched first; a waiting
        request gains a level per --priority-aging-seconds of the server).
        queue_timeout: seconds the request may wait in that queue; past them
        it ends with WfmError("DEADLINE_EXCEEDED") and nothing is computed
        (None = no limit but the call's own deadline).
        """
        request = wfm_service_pb2.SampleNichesRequest(
            model=model, num_samples=num, points_per_sample=points, label=label, steps=steps,
            seed=seed, trajectory=trajectory, solver=solver, version=version)
        _set_tolerances(request, rtol, atol)
        _set_queue_policy(request, priority, queue_timeout)
        if init is not None:
            init_points, init_sizes = _init_clouds(init)
            request.init_points.extend(init_points.tolist())
            request.init_sizes.extend(init_sizes)
            num = num or len(init_sizes)
        if condition is not None:
            request.condition.extend(np.asarray(condition, dtype=np.float32).ravel().tolist())
        if guidance is not None:
            request.guidance = guidance
        point_parts, sizes, labels, conditions, frames_parts = [], [], [], [], []
        dim, frames, evaluations, used = 0, 0, 0, 0
        bar = Progress(progress, num, f"sample {model}", "clouds")
        try:
            for chunk in self._stub.SampleNiches(request, timeout=_LONG_TIMEOUT,
                                                 metadata=self._metadata):
                if chunk.first_sample != len(sizes):
                    raise WfmError("INTERNAL", f"chunk starts at {chunk.first_sample} after "
                                   f"{len(sizes)} samples", "SampleNiches")
                dim, frames = chunk.dim, chunk.frames
                evaluations, used = chunk.network_evaluations, chunk.version
                p = int(sum(chunk.sizes))
                point_parts.append(np.asarray(chunk.points, dtype=np.float32).reshape(p, dim))
                sizes.extend(chunk.sizes)
                labels.extend(chunk.labels)
                conditions.extend(chunk.conditions)
                if frames:
                    frames_parts.append(
                        np.asarray(chunk.trajectory, dtype=np.float32).reshape(frames, p, dim))
                bar.update_to(len(sizes))
        except grpc.RpcError as e:
            raise WfmError(e.code().name, e.details(), "SampleNiches") from None
        finally:
            bar.close()
        all_points = np.concatenate(point_parts) if point_parts else np.zeros((0, dim), np.float32)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        out_labels = None
        if labels:
            out_labels = list(labels)
        elif conditions and sizes:
            out_labels = np.asarray(conditions, dtype=np.float32).reshape(len(sizes), -1)
        clouds = [all_points[offsets[i]:offsets[i + 1]] for i in range(len(sizes))]
        traj = np.concatenate(frames_parts, axis=1) if frames_parts else None
        return Samples(all_points, offsets, out_labels, clouds, traj, evaluations, used)

    def sample_gaussians(self, model: str, num: int, label: str = "", steps: int = 0,
                         seed: int = 0, solver: str = "", rtol: Optional[float] = None,
                         atol: Optional[float] = None, init: Any = None,
                         condition: Any = None, priority: str = "normal",
                         queue_timeout: Optional[float] = None,
                         guidance: Optional[float] = None, version: int = 0) -> GaussianSamples:
        """Generates `num` Gaussians; returns GaussianSamples.

        solver: as for sample(); the default is "euler". init: given source
        Gaussians, one per sample (means [n, d] and covs [n, d, d]: a
        (means, covs) pair, a GaussianSamples or a mapping with "means" and
        "covs"); num may then be 0 (= n). condition (a model trained on
        condition vectors): one vector for every sample, one per sample
        ([num, condition_dim]), or a dict by the model's condition columns
        as for sample_niches(); None = drawn per sample from the training
        conditions. The labels of the result are then the condition vector
        of each Gaussian ([num, condition_dim]). guidance: classifier-free
        guidance γ (None = the model's default_guidance; models trained
        with guidance > 1 learned the null condition), as for sample().
        priority, queue_timeout, version: as for sample()."""
        request = wfm_service_pb2.SampleGaussiansRequest(
            model=model, num_samples=num, label=label, steps=steps, seed=seed, solver=solver,
            version=version)
        _set_tolerances(request, rtol, atol)
        _set_queue_policy(request, priority, queue_timeout)
        if guidance is not None:
            request.guidance = guidance
        if isinstance(condition, Mapping):
            condition = condition_vector(condition_columns(self.model(model, version)), condition)
        if condition is not None:
            request.condition.extend(np.asarray(condition, dtype=np.float32).ravel().tolist())
        if init is not None:
            means, covs = _init_gaussians(init)
            request.init_means.extend(means.ravel().tolist())
            request.init_covs.extend(covs.ravel().tolist())
        r = self._call("SampleGaussians", request, _LONG_TIMEOUT)
        d = r.dim
        means = np.asarray(r.means, dtype=np.float64).reshape(-1, d)
        covs = np.asarray(r.covs, dtype=np.float64).reshape(-1, d, d)
        labels = list(r.labels) or None
        if labels is None and len(r.conditions) > 0:
            labels = np.asarray(r.conditions, dtype=np.float32).reshape(len(means), -1)
        return GaussianSamples(means, covs, labels, r.network_evaluations, r.version)

    def evaluate(self, model: str, dataset: str, num: int = 0, split: str = "all",
                 emd: bool = True, steps: int = 0, seed: int = 0, max_reference: int = 0,
                 solver: str = "", rtol: Optional[float] = None,
                 atol: Optional[float] = None,
                 version: int = 0) -> "wfm_service_pb2.EvaluateResponse":
        """Samples the model (`version`, 0 = the serving one) and compares
        with a data set (1-NNA, MMD, COV)."""
        request = wfm_service_pb2.EvaluateRequest(
            model=model, dataset=dataset, split=split, num_samples=num, steps=steps, seed=seed,
            max_reference=max_reference, emd=emd, solver=solver, version=version)
        _set_tolerances(request, rtol, atol)
        return self._call("Evaluate", request, _LONG_TIMEOUT)

    # ------------------------------------------------------------- AnnData

    def upload_anndata(self, adata: Any, name: str, features: str = "X",
                       spatial_key: str = "spatial", sample_key: Optional[str] = None,
                       label_key: Optional[str] = None,
                       condition_keys: Optional[Sequence[str]] = None, description: str = "",
                       overwrite: bool = False, chunk_bytes: int = CHUNK_BYTES,
                       progress: bool = False) -> "types_pb2.Dataset":
        """Uploads the cells of an in-memory AnnData as a SPATIAL_CELLS data
        set (the server builds the niches at training):

        * features: "X" (dense or sparse; sent with adata.var_names as the
          feature names) or "obsm:KEY" (e.g. "obsm:X_pca").
        * spatial_key: obsm key of the coordinates, [n_obs, 2] or [n_obs, 3] (3-D tissue).
        * sample_key: obs column of the sample / section ids (niches stay
          within a sample); label_key: obs column of the cells' labels
          (e.g. cell type), the niches' condition. condition_keys: several
          obs columns and "obsm:KEY" vectors as the niches' condition
          vector (categorical one-hot, numeric as is, concatenated; the
          encoding is stored with the data set; one non-float obs column is
          label_key). A list in label_key's place is condition_keys
          (DESIGN.md's positional order).

        Streams the cells in chunks of about `chunk_bytes` (as
        upload_cells); a sparse X is densified one chunk at a time. Returns
        the stored Dataset. KeyError / ValueError for keys or shapes that do
        not fit, WfmError for what the server refuses."""
        cells = cells_from_anndata(adata, features, spatial_key, sample_key, label_key,
                                   condition_keys)
        return self._upload_cell_rows(name, cells.n, cells.dim, cells.rows, cells.coords,
                                      cells.sample_ids, cells.labels, cells.feature_names,
                                      description, overwrite, chunk_bytes, progress,
                                      cells.conditions, cells.condition_columns)

    def sample_niches(self, model: str, num: int, condition: Any = None, points: int = 0,
                      guidance: Optional[float] = None, seed: int = 0, progress: bool = False,
                      **sampling: Any) -> Any:
        """Generates `num` niches and returns them as an anndata.AnnData: one
        row per generated cell (X [cells, features]), obs["niche"] the
        niche's index, obs["condition"] its label (a discrete model) or
        obsm["condition"] its condition vector, var_names the feature names
        of the model's training data (e.g. the genes of the uploaded
        AnnData; "0".."d-1" when it had none). condition: a label (str), a
        condition vector, or a dict by the model's condition columns
        ({"cell_type": "T cell", "age": 40, "obsm:pca": [0.1, 2]}; a model
        with discrete labels takes one {key: label}); points: cells per
        niche (0: drawn from the training sizes). With a model's condition
        columns, each niche's decoded condition is added: obs[KEY] per obs
        column (categorical or numeric), obsm[NAME] per obsm:NAME vector.
        Further keywords go to sample() (steps=, solver=,
        priority=, queue_timeout=, ...)."""
        label, vector = "", None
        info = self.model(model, sampling.get("version", 0))
        columns = condition_columns(info)
        if isinstance(condition, Mapping):
            if info.label_type == types_pb2.LABEL_TYPE_DISCRETE and len(condition) == 1:
                condition = next(iter(condition.values()))
            else:
                condition = condition_vector(columns, condition)
        if condition is not None:
            if isinstance(condition, (str, bytes, int, np.integer)) and not isinstance(condition, bool):
                label = condition.decode() if isinstance(condition, bytes) else str(condition)
            else:
                vector = condition
        samples = self.sample(model, num, points=points, label=label, condition=vector,
                              guidance=guidance, seed=seed, progress=progress, **sampling)
        adata = niches_to_anndata(samples.points, samples.offsets, samples.labels,
                                  list(info.feature_names) or None,
                                  uns={"model": model, "seed": seed, "num": num,
                                       "condition": label if vector is None
                                       else np.asarray(vector, dtype=np.float32)})
        if columns and isinstance(samples.labels, np.ndarray):
            # The decoded condition of each niche, on every cell of it.
            niche = np.asarray(adata.obs["niche"], dtype=np.int64)
            decoded = [decode_condition(columns, row) for row in samples.labels]
            for c in columns:
                values = [decoded[i][c.key] for i in niche]
                if c.kind == "obsm":
                    adata.obsm[c.name] = np.asarray(values, dtype=np.float32).reshape(len(niche), -1)
                elif c.kind == "categorical":
                    import pandas as pd
                    adata.obs[c.key] = pd.Categorical(values, categories=list(c.categories))
                else:
                    adata.obs[c.key] = np.asarray(values, dtype=np.float32)
        return adata
