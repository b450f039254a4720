import io

import numpy as np
import pyarrow as pa
import pytest

from lensfinder.stamps import (
    STAMP_SHAPE, StampFormatError, decode_npz, decode_stamps, encode_npz, encode_stamps,
)


def _stamps(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n,) + STAMP_SHAPE).astype(np.float32)


def test_raw_round_trip_is_zero_copy_and_respects_slices():
    s = _stamps(10)
    col = encode_stamps(s)
    out = decode_stamps(col)
    np.testing.assert_array_equal(out, s)
    assert not out.flags.owndata  # a view of the Arrow buffer
    np.testing.assert_array_equal(decode_stamps(col.slice(3, 4)), s[3:7])
    chunked = pa.chunked_array([col.slice(0, 2), col.slice(2, 8)])
    np.testing.assert_array_equal(decode_stamps(chunked), s)


def test_wrong_shape_type_and_nulls_are_clear_errors():
    with pytest.raises(StampFormatError, match="must be"):
        encode_stamps(np.zeros((2, 3, 32, 32), np.float32))
    with pytest.raises(StampFormatError, match="type"):
        decode_stamps(pa.array([b"x" * 10]))
    col = pa.array([bytes(4 * 12288), None], type=pa.binary(4 * 12288))
    with pytest.raises(StampFormatError, match="null"):
        decode_stamps(col)


def test_legacy_npz_round_trip_and_per_band_archives():
    s = _stamps(3)
    np.testing.assert_array_equal(decode_npz(encode_npz(s)), s)
    buf = io.BytesIO()
    np.savez_compressed(buf, image_g=s[0, 0], image_r=s[0, 1], image_z=s[0, 2])
    np.testing.assert_array_equal(decode_npz(pa.array([buf.getvalue()]))[0], s[0])


def test_corrupt_npz_row_is_named():
    col = pa.array([encode_npz(_stamps(1))[0].as_py(), b"garbage"])
    with pytest.raises(StampFormatError, match="row 1"):
        decode_npz(col, where="part-1.parquet")
