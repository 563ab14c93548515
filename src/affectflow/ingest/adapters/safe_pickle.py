"""A restricted unpickler for index files: lists, tuples, ints and 1-D integer numpy arrays only.

`find_class` refuses every global except numpy's array and dtype reconstructors, and even those
are replaced by inert stand-ins defined here: nothing named in the file is ever imported or
called, so a pickle that asks for `os.system` (or anything else) fails before running anything.
Arrays come back as plain lists of ints. Python 2 pickles (protocol 2, arrays as latin-1 text) and
Python 3 ones (protocols 3-5) of integer arrays are understood; Python 3 protocol 2 pickles of
numpy arrays go through `_codecs.encode`, which is refused.

The size of what comes back is bounded too, since a pickle can name one list many times (memo
references) and so describe far more than it holds: files over `MAX_PICKLE_BYTES` are refused
before loading, and the conversion to plain lists counts as it goes, refusing nesting deeper than
`MAX_DEPTH`, more than `MAX_ELEMENTS` elements (every reference counted, arrays decoded only
within the budget) and self-referencing lists, each with `UnsafePickleError`.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from affectflow.ingest.manifest import ManifestError

_INT_DTYPES = {"i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"}
MAX_PICKLE_BYTES = 4 * 2**20  # MUStARD's split_indices.p is a few tens of KB; bounds the memo's size too
MAX_DEPTH = 16  # MUStARD: folds list > (train, test) tuple > index array = 3 levels
MAX_ELEMENTS = 4_000_000  # every list/tuple item and array value; MUStARD has 5 × 690 indices


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
    """Stands in for a 1-D integer `numpy.ndarray`; holds its raw data, decoded by `values`."""

    def __init__(self) -> None:
        self.raw, self.size, self.order, self.signed = b"", 8, "little", True
        self.decoded: list[int] | None = None

    def __len__(self) -> int:
        return len(self.raw) // self.size

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], _DType)):
            raise UnsafePickleError("array state is not (version, shape, dtype, fortran, data)")
        self.fill(state[4], state[2], state[1])

    def fill(self, raw: Any, dtype: Any, shape: Any) -> None:
        """Keep `raw` (bytes, or latin-1 text from a Python 2 pickle) to decode as integers."""
        raw = raw.encode("latin-1") if isinstance(raw, str) else raw
        raw = bytes(raw) if isinstance(raw, (bytearray, pickle.PickleBuffer)) else raw
        if not isinstance(dtype, _DType):
            raise UnsafePickleError("array dtype is not an allowed integer dtype")
        size = int(dtype.spec[1])
        if not (isinstance(shape, tuple) and len(shape) == 1 and isinstance(shape[0], int)
                and isinstance(raw, bytes) and len(raw) == shape[0] * size):
            raise UnsafePickleError(f"array of shape {shape!r} does not match its data")
        self.raw, self.size, self.signed = raw, size, dtype.spec[0] == "i"
        self.order = "big" if dtype.byteorder == ">" else "little"
        self.decoded = None

    def values(self) -> list[int]:
        """The array as a list of ints (decoded once, then shared by every reference)."""
        if self.decoded is None:
            raw, size, order, signed = self.raw, self.size, self.order, self.signed
            self.decoded = [int.from_bytes(raw[i:i + size], order, signed=signed)
                            for i in range(0, len(raw), size)]
        return self.decoded


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


class _Converter:
    """Turns the unpickled value into plain lists, counting elements (every reference, so a list
    named a thousand times costs a thousand times its length) and refusing, as soon as a bound is
    passed, more than `max_elements`, nesting deeper than `max_depth` and self-references."""

    def __init__(self, max_depth: int, max_elements: int) -> None:
        self.max_depth, self.max_elements = max_depth, max_elements
        self.count = 0
        self.open: set[int] = set()  # ids of the lists/tuples being converted (the current path)

    def add(self, n: int) -> None:
        self.count += n
        if self.count > self.max_elements:
            raise UnsafePickleError(f"split indices hold more than {self.max_elements:,} elements "
                                    "(counting every reference to a shared list)")

    def plain(self, value: Any, depth: int = 1) -> Any:
        if isinstance(value, _Array):
            self.add(len(value))
            return value.values()
        if isinstance(value, (list, tuple)):
            if depth > self.max_depth:
                raise UnsafePickleError(f"split indices nest deeper than {self.max_depth} levels")
            if id(value) in self.open:
                raise UnsafePickleError(f"self-referencing {type(value).__name__} in split indices")
            self.add(len(value))
            if all(type(v) is int for v in value):  # a flat list of indices: no recursion
                return list(value)
            self.open.add(id(value))
            try:
                return [v if type(v) is int else self.plain(v, depth + 1) for v in value]
            finally:
                self.open.discard(id(value))
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UnsafePickleError(f"unexpected {type(value).__name__} in split indices")


def safe_unpickle(data: bytes, max_bytes: int = MAX_PICKLE_BYTES, max_depth: int = MAX_DEPTH,
                  max_elements: int = MAX_ELEMENTS) -> Any:
    """Unpickle `data` with `RestrictedUnpickler`; arrays become lists. UnsafePickleError if refused
    (a global, or a pickle over `max_bytes`, nesting deeper than `max_depth`, holding more than
    `max_elements` elements, or a list that contains itself)."""
    if len(data) > max_bytes:
        raise UnsafePickleError(f"pickle of {len(data):,} bytes refused (more than {max_bytes:,}; "
                                "split indices are a few KB)")
    value = RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    return _Converter(max_depth, max_elements).plain(value)
