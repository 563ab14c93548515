"""The restricted unpickler's bounds: a small pickle cannot make it build a huge, deep or
self-referencing structure (it refuses with UnsafePickleError, quickly and in little memory)."""

from __future__ import annotations

import io
import pickle
import struct
import time
import tracemalloc

import numpy as np
import pytest

from affectflow.ingest.adapters import safe_pickle
from affectflow.ingest.adapters.safe_pickle import MAX_ELEMENTS, UnsafePickleError, safe_unpickle


def memo_bomb() -> bytes:
    """2.6 KB that describe 20 million ints: one 100-int list, referenced 200 × 1000 times."""
    a = list(range(100))
    b = [a] * 1000
    return pickle.dumps([b] * 200, protocol=2)


def test_self_referencing_list_is_refused() -> None:
    loop: list = []
    loop.append(loop)
    nested: list = [1, [2, (3,)]]
    nested[1].append(nested)
    for value in (loop, nested, [(loop,)]):
        t0 = time.perf_counter()
        with pytest.raises(UnsafePickleError, match="self-referencing list"):
            safe_unpickle(pickle.dumps(value, protocol=4))
        assert time.perf_counter() - t0 < 1.0


def test_memo_bomb_is_refused_fast_and_small() -> None:
    data = memo_bomb()
    assert len(data) < 5000
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        with pytest.raises(UnsafePickleError, match=f"more than {MAX_ELEMENTS:,} elements"):
            safe_unpickle(data)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 2.0, seconds
    assert peak < 50 * 2**20, peak


def test_shared_arrays_count_every_reference() -> None:
    array = np.arange(1000, dtype=np.int64)
    data = pickle.dumps([[array] * 100] * 100, protocol=4)  # one array, 10 million values
    with pytest.raises(UnsafePickleError, match="elements"):
        safe_unpickle(data)
    assert safe_unpickle(pickle.dumps([array] * 3, protocol=4)) == [list(range(1000))] * 3
    with pytest.raises(UnsafePickleError, match="more than 10 elements"):
        safe_unpickle(pickle.dumps([array[:6], array[:5]], protocol=4), max_elements=10)


def test_deep_nesting_is_refused() -> None:
    deep: list = [1]
    for _ in range(200):
        deep = [deep]
    with pytest.raises(UnsafePickleError, match="nest deeper than 16 levels"):
        safe_unpickle(pickle.dumps(deep, protocol=4))
    ok: list = [1]
    for _ in range(15):  # 16 levels of lists: allowed
        ok = [ok]
    assert safe_unpickle(pickle.dumps(ok, protocol=4)) == ok
    with pytest.raises(UnsafePickleError, match="nest deeper than 16 levels"):
        safe_unpickle(pickle.dumps([ok], protocol=4))


def test_oversized_input_is_refused_before_loading(monkeypatch) -> None:
    def no_load(*args, **kwargs):
        raise AssertionError("the unpickler must not run")

    monkeypatch.setattr(safe_pickle.RestrictedUnpickler, "load", no_load)
    with pytest.raises(UnsafePickleError, match=r"pickle of 4,194,305 bytes refused"):
        safe_unpickle(b"\x80" * (safe_pickle.MAX_PICKLE_BYTES + 1))
    with pytest.raises(UnsafePickleError, match="bytes refused"):
        safe_unpickle(pickle.dumps(list(range(100))), max_bytes=100)


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` (BINSTRING), as Python 2 pickled numpy arrays' data; a
    Python 3 protocol-2 pickle goes through `_codecs.encode` instead, which is refused."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes_as_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes_as_str


@pytest.mark.parametrize("protocol", [2, 4])
def test_mustard_like_folds_still_load(protocol: int) -> None:
    rng = np.random.default_rng(0)
    folds = []
    for _ in range(5):  # MUStARD: 5 × (552 train, 138 test) int64 arrays
        order = rng.permutation(690)
        folds.append((np.sort(order[138:]).astype(np.int64), np.sort(order[:138]).astype(np.int64)))
    if protocol == 2:
        buffer = io.BytesIO()
        Py2Pickler(buffer, protocol=2).dump(folds)
        data = buffer.getvalue()
        assert b"_codecs" not in data
    else:
        data = pickle.dumps(folds, protocol=protocol)
    t0 = time.perf_counter()
    loaded = safe_unpickle(data)
    assert time.perf_counter() - t0 < 1.0
    assert loaded == [[train.tolist(), test.tolist()] for train, test in folds]
