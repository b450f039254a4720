import shutil

import numpy as np
import pyarrow as pa
import pytest
from astropy.io import fits

from lensfinder.sky.columns import SWEEP_COLUMNS
from lensfinder.sky.sweeps import SweepError, iter_sweep, read_sweep, sweep_num_rows


def test_reads_every_column_with_normalised_dtypes(mock_sky):
    t = read_sweep(mock_sky.sweeps[0])
    assert t.column_names == list(SWEEP_COLUMNS)
    assert t.num_rows == sweep_num_rows(mock_sky.sweeps[0]) > 0
    assert t.schema.field("BRICKNAME").type == pa.string()
    assert t.schema.field("RA").type == pa.float64()
    assert t.schema.field("FLUX_R").type == pa.float32()
    assert t.schema.field("MASKBITS").type == pa.int32()
    assert set(t["TYPE"].to_pylist()) <= {"PSF", "REX", "DEV", "EXP", "SER"}


def test_chunks_reassemble_the_file(mock_sky):
    whole = read_sweep(mock_sky.sweeps[0], ["OBJID", "RA", "BRICKNAME"])
    chunks = list(iter_sweep(mock_sky.sweeps[0], ["OBJID", "RA", "BRICKNAME"], chunk_rows=37))
    assert max(c.num_rows for c in chunks) == 37
    assert pa.concat_tables(chunks).equals(whole)


def test_missing_column_names_file_and_column(mock_sky, tmp_path):
    with fits.open(mock_sky.sweeps[0]) as hdul:
        cols = [c for c in hdul[1].columns if c.name != "FIBERFLUX_Z"]
        bad = tmp_path / "sweep-150p000-155p005.fits"
        fits.BinTableHDU.from_columns(cols).writeto(bad)
    with pytest.raises(SweepError, match=r"sweep-150p000-155p005\.fits: missing column\(s\) FIBERFLUX_Z"):
        next(iter_sweep(bad))


@pytest.mark.parametrize("keep", [0.8, 0.1, "block"])
def test_truncated_file_is_a_clear_error(mock_sky, tmp_path, keep):
    bad = tmp_path / "truncated.fits"
    data = mock_sky.sweeps[0].read_bytes()
    # "block": cut on a 2880-byte boundary, so only the header's declared size reveals it
    n = (len(data) - 2880) // 2880 * 2880 if keep == "block" else int(len(data) * keep)
    bad.write_bytes(data[:n])
    with pytest.raises(SweepError, match=r"truncated\.fits: (truncated|not a readable FITS)"):
        next(iter_sweep(bad))


def test_a_file_cut_inside_the_table_header_names_the_file(mock_sky, tmp_path):
    bad = tmp_path / "header-cut.fits"
    bad.write_bytes(mock_sky.sweeps[0].read_bytes()[: 2 * 2880])  # primary HDU + part of the table header
    with pytest.raises(SweepError, match=r"header-cut\.fits: not a readable FITS sweep file"):
        next(iter_sweep(bad))
    with pytest.raises(SweepError, match=r"header-cut\.fits"):
        sweep_num_rows(bad)


def test_a_text_flux_column_names_the_file_and_column(mock_sky, tmp_path):
    with fits.open(mock_sky.sweeps[0]) as hdul:
        data = hdul[1].data
        cols = [fits.Column(name="FLUX_R", format="20A", array=np.char.mod("%.4f", data["FLUX_R"]))
                if c.name == "FLUX_R" else c for c in hdul[1].columns]
        bad = tmp_path / "text-flux.fits"
        fits.BinTableHDU.from_columns(cols).writeto(bad)
    with pytest.raises(SweepError, match=r"text-flux\.fits: column FLUX_R is stored as text"):
        next(iter_sweep(bad))


def test_not_fits_is_a_clear_error(tmp_path):
    bad = tmp_path / "sweep.fits"
    bad.write_text("<html>not found</html>")
    with pytest.raises(SweepError, match="sweep.fits"):
        sweep_num_rows(bad)


def test_lower_case_tractor_names_and_narrow_dtypes_are_normalised(mock_sky, tmp_path):
    with fits.open(mock_sky.sweeps[0]) as hdul:
        src = hdul[1].data
        cols = [
            fits.Column(name="objid", format="J", array=src["OBJID"]),
            fits.Column(name="maskbits", format="I", array=src["MASKBITS"].astype(np.int16)),
            fits.Column(name="type", format="3A", array=src["TYPE"]),
        ]
    p = tmp_path / "tractor-1501p020.fits"
    fits.BinTableHDU.from_columns(cols).writeto(p)
    t = read_sweep(p, ["OBJID", "MASKBITS", "TYPE"])
    assert t.schema.field("MASKBITS").type == pa.int32()
    assert t["OBJID"].to_pylist()[:3] == list(src["OBJID"][:3])


def test_reader_accepts_a_copied_file_unchanged(mock_sky, tmp_path):
    copy = tmp_path / mock_sky.sweeps[0].name
    shutil.copy(mock_sky.sweeps[0], copy)
    assert read_sweep(copy).equals(read_sweep(mock_sky.sweeps[0]))
