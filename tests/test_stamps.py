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


def test_a_corrupted_stamp_page_is_an_error_naming_file_and_row_group(tmp_path):
    """Stamp files carry page CRCs: a flipped byte inside the uncompressed stamp data (the
    footer intact) is caught on read instead of training on finite garbage."""
    from stampdata import write_stamp_files

    from lensfinder.training.data import StampStream
    from lensfinder.stamps import iter_row_groups
    from lensfinder.training.config import LoaderConfig

    (path,) = write_stamp_files(tmp_path, n_files=1, groups=2, rows=8)
    data = bytearray(path.read_bytes())
    data[len(data) * 3 // 4] ^= 0x5A  # inside the second row group's stamp page
    path.write_bytes(bytes(data))
    with pytest.raises(StampFormatError, match=r"part-1-of-1\.parquet: row group 1: corrupted or unreadable"):
        for _ in iter_row_groups(path):
            pass
    stream = StampStream([path], "train", LoaderConfig(batch_size=4, num_workers=0), seed=0, train=False,
                         rank=0, world_size=1)
    with pytest.raises(StampFormatError, match=r"part-1-of-1\.parquet: row group 1"):
        list(stream)


def test_a_file_that_is_not_parquet_is_named(tmp_path):
    from lensfinder.stamps import iter_row_groups

    bad = tmp_path / "part-1-of-1.parquet"
    bad.write_text("<html>502 Bad Gateway</html>")
    with pytest.raises(StampFormatError, match=r"part-1-of-1\.parquet: not a readable Parquet stamp file"):
        next(iter_row_groups(bad))
