"""A restricted unpickler for index files: lists, tuples, ints and 1-D integer numpy arrays only.

`find_class` refuses every global except numpy's array and dtype reconstructors, and even those
are replaced by inert stand-ins defined here: nothing named in the file is ever imported or
called, so a pickle that asks for `os.system` (or anything else) fails before running anything.
Arrays come back as plain lists of ints. Python 2 pickles (protocol 2, arrays as latin-1 text) and
Python 3 ones (protocols 3-5) of integer arrays are understood; Python 3 protocol 2 pickles of
numpy arrays go through `_codecs.encode`, which is refused.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from affectflow.ingest.manifest import ManifestError

_INT_DTYPES = {"i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"}


class UnsafePickleError(ManifestError):
    """A pickle asked for something the restricted unpickler does not allow."""


class _NDArrayClass:
    """Stands in for `numpy.ndarray` (only as the first argument of `_reconstruct`)."""


class _DType:
    """Stands in for `numpy.dtype(spec, align, copy)`: integer dtypes only."""

    def __init__(self, spec: Any, align: Any = 0, copy: Any = 1) -> None:
        spec = spec.decode("latin-1") if isinstance(spec, bytes) else spec
        if spec not in _INT_DTYPES:
            raise UnsafePickleError(f"dtype {spec!r} refused (only integer arrays are allowed)")
        self.spec, self.byteorder = spec, "<"

    def __setstate__(self, state: Any) -> None:
        order = state[1] if isinstance(state, tuple) and len(state) > 1 else "<"
        order = order.decode("latin-1") if isinstance(order, bytes) else order
        if order not in ("<", ">", "|", "="):
            raise UnsafePickleError(f"dtype byte order {order!r} refused")
        self.byteorder = ">" if order == ">" else "<"


class _Array:
    """Stands in for a 1-D integer `numpy.ndarray`; holds its values as a list of ints."""

    def __init__(self) -> None:
        self.values: list[int] = []

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], _DType)):
            raise UnsafePickleError("array state is not (version, shape, dtype, fortran, data)")
        self.fill(state[4], state[2], state[1])

    def fill(self, raw: Any, dtype: Any, shape: Any) -> None:
        """Decode `raw` (bytes, or latin-1 text from a Python 2 pickle) as integers."""
        raw = raw.encode("latin-1") if isinstance(raw, str) else raw
        raw = bytes(raw) if isinstance(raw, (bytearray, pickle.PickleBuffer)) else raw
        if not isinstance(dtype, _DType):
            raise UnsafePickleError("array dtype is not an allowed integer dtype")
        size = int(dtype.spec[1])
        if not (isinstance(shape, tuple) and len(shape) == 1 and isinstance(shape[0], int)
                and isinstance(raw, bytes) and len(raw) == shape[0] * size):
            raise UnsafePickleError(f"array of shape {shape!r} does not match its data")
        order = "big" if dtype.byteorder == ">" else "little"
        self.values = [int.from_bytes(raw[i:i + size], order, signed=dtype.spec[0] == "i")
                       for i in range(0, len(raw), size)]


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> _Array:
    if cls is not _NDArrayClass:
        raise UnsafePickleError("_reconstruct is only allowed for numpy.ndarray")
    return _Array()


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> _Array:
    array = _Array()  # numpy's protocol-5 form: _frombuffer(buffer, dtype, shape, order)
    array.fill(buffer, dtype, shape)
    return array


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _NDArrayClass,
    ("numpy", "dtype"): _DType,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Builds only lists, tuples, ints (and 1-D integer numpy arrays, as inert stand-ins).

    `find_class` refuses every global except numpy's array/dtype reconstructors, which are
    replaced by the harmless classes above; nothing named in the file is ever imported.
    """

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED.get((module, name))
        if allowed is None:
            raise UnsafePickleError(f"global {module}.{name} refused: only lists/tuples of "
                                    "ints and integer numpy arrays may be unpickled")
        return allowed

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("persistent ids refused")


def _plain(value: Any) -> Any:
    if isinstance(value, _Array):
        return value.values
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise UnsafePickleError(f"unexpected {type(value).__name__} in split indices")


def safe_unpickle(data: bytes) -> Any:
    """Unpickle `data` with `RestrictedUnpickler`; arrays become lists. UnsafePickleError if refused."""
    return _plain(RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load())
