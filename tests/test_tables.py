import os

import pyarrow as pa
import pytest

from lensfinder.tables import ParquetStreamWriter, write_json, write_parquet


def test_a_killed_writers_temporary_file_is_removed_when_the_output_is_written_again(tmp_path):
    out = tmp_path / "part-1-of-2.parquet"
    stale = tmp_path / ".part-1-of-2.parquet.tmp"  # what a SIGKILLed job leaves
    stale.write_bytes(b"half a file")
    other = tmp_path / ".part-2-of-2.parquet.tmp"  # another shard's: not this output's
    other.write_bytes(b"x")
    write_parquet(pa.table({"a": [1, 2]}), out)
    assert out.exists() and not stale.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, out.name]


def test_a_failed_write_leaves_neither_output_nor_temporary_file(tmp_path):
    out = tmp_path / "x.parquet"
    with pytest.raises(RuntimeError):
        with ParquetStreamWriter(out, pa.schema([("a", pa.int64())])) as w:
            w.write(pa.table({"a": [1]}))
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []
    write_json({"a": float("nan")}, tmp_path / "r.json")
    assert (tmp_path / "r.json").read_text() == '{\n  "a": null\n}\n'
