import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from lensfinder.sky.bricks import coadd_path
from lensfinder.sky.coadds import (
    FLAG_EDGE, FLAG_NAN, FLAG_NO_COVERAGE, FLAG_OFF_BRICK, CoaddBrick, CoaddError, flag_counts,
)

from conftest import SMALL_SKY

BRICK = SMALL_SKY.bricks[0]


def _copy_brick(mock_sky, tmp_path):
    dst = tmp_path / "coadd"
    shutil.copytree(mock_sky.coadd_dir / BRICK[:3] / BRICK, dst / BRICK[:3] / BRICK)
    return dst


def _rewrite_plain(path, data=None, header=None):
    with fits.open(path) as hdul:
        d = hdul[1].data if data is None else data
        h = hdul[1].header if header is None else header
    path.unlink()
    fits.PrimaryHDU(data=d, header=h).writeto(path)  # plain (not fpacked) FITS, same name


def test_cutouts_are_centred_on_the_object(mock_sky):
    cat = pq.read_table(mock_sky.catalog_dir / f"{BRICK}.parquet").to_pandas()
    brick = CoaddBrick(mock_sky.coadd_dir, BRICK)
    # pixels exist only in the windows around LRG-like galaxies: centre on bright ones
    # without a look-alike feature or a catalogued neighbour within 6"
    x, y = brick.world_to_pixel(cat.RA.to_numpy(), cat.DEC.to_numpy())
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    np.fill_diagonal(d, np.inf)
    bright = cat[(cat.MOCK_POP == "lrg") & (cat.MOCK_POPULATION == "ordinary") & (cat.FLUX_Z > 20)
                 & (d.min(axis=1) > 6 / 0.262)]
    cut = brick.cutouts(bright.RA.to_numpy(), bright.DEC.to_numpy())
    assert cut.image.shape == (len(bright), 3, 64, 64) and cut.image.dtype == np.float32
    assert cut.invvar.shape == cut.image.shape
    clean = cut.flags == 0
    assert clean.any()
    # brightest pixel of the central 9x9 box (a neighbour elsewhere may be brighter)
    peaks = [np.unravel_index(np.argmax(im[1, 28:37, 28:37]), (9, 9)) for im in cut.image[clean]]
    assert all(abs(py - 4) <= 1 and abs(px - 4) <= 1 for py, px in peaks)


def test_edge_and_off_brick_stamps_are_nan_padded_and_flagged(mock_sky):
    brick = CoaddBrick(mock_sky.coadd_dir, BRICK)
    ra, dec = brick.wcs.all_pix2world([5.0, 250.0, 5000.0], [5.0, 250.0, 5000.0], 0)
    cut = brick.cutouts(ra, dec)
    assert cut.flags[0] & FLAG_EDGE and not cut.flags[0] & FLAG_OFF_BRICK
    assert np.isnan(cut.image[0, :, 0, 0]).all() and (cut.invvar[0, :, 0, 0] == 0).all()
    assert np.isfinite(cut.image[0, :, 40, 40]).all()
    assert not cut.flags[1] & (FLAG_EDGE | FLAG_OFF_BRICK)
    assert cut.flags[2] & FLAG_OFF_BRICK and np.isnan(cut.image[2]).all()
    counts = flag_counts(cut.flags)
    assert counts["edge"] == 2 and counts["off_brick"] == 1


def _covered_centres(brick, n: int) -> list[tuple[int, int]]:
    """(x, y) pixel centres of ``n`` stamps covered in every band, pairwise > 64 px apart
    (the mock renders pixels only in windows around its LRG-like galaxies)."""
    ok = (brick.invvar > 0).all(axis=0)
    out = []
    for y in range(40, ok.shape[0] - 40, 4):
        for x in range(40, ok.shape[1] - 40, 4):
            if ok[y - 32:y + 32, x - 32:x + 32].all() and all(max(abs(x - a), abs(y - b)) > 64 for a, b in out):
                out.append((x, y))
                if len(out) == n:
                    return out
    raise AssertionError(f"fewer than {n} covered stamps")


def test_nan_region_and_zero_invvar_are_flagged_and_counted(mock_sky, tmp_path):
    root = _copy_brick(mock_sky, tmp_path)
    (xa, ya), (xb, yb), (xc, yc) = _covered_centres(CoaddBrick(root, BRICK), 3)
    img_path = coadd_path(root, BRICK, "image", "r")
    with fits.open(img_path) as hdul:
        img = hdul[1].data.copy()
    img[ya - 10:ya + 10, xa - 10:xa + 10] = np.nan
    _rewrite_plain(img_path, data=img)
    ivar_path = coadd_path(root, BRICK, "invvar", "z")
    with fits.open(ivar_path) as hdul:
        ivar = hdul[1].data.copy()
    ivar[yb - 5:yb + 5, xb - 5:xb + 5] = 0
    _rewrite_plain(ivar_path, data=ivar)
    brick = CoaddBrick(root, BRICK)
    ra, dec = brick.wcs.all_pix2world([xa, xb, xc], [ya, yb, yc], 0)
    cut = brick.cutouts(ra, dec)
    assert cut.flags[0] & FLAG_NAN and not cut.flags[0] & FLAG_NO_COVERAGE
    assert cut.flags[1] & FLAG_NO_COVERAGE and not cut.flags[1] & FLAG_NAN
    assert cut.flags[2] == 0
    assert flag_counts(cut.flags) == {"edge": 0, "off_brick": 0, "nan_pixels": 1, "zero_invvar": 1, "no_data": 0,
                                      "service_error": 0}


def test_coadd_without_wcs_names_the_file(mock_sky, tmp_path):
    root = _copy_brick(mock_sky, tmp_path)
    path = coadd_path(root, BRICK, "image", "g")
    with fits.open(path) as hdul:
        data = hdul[1].data.copy()
    _rewrite_plain(path, data=data, header=fits.Header())
    with pytest.raises(CoaddError, match=r"legacysurvey-1501p020-image-g\.fits\.fz: header has no celestial TAN WCS"):
        CoaddBrick(root, BRICK)


def test_missing_coadd_names_the_file(tmp_path):
    with pytest.raises(CoaddError, match=r"legacysurvey-1501p020-image-g\.fits\.fz: coadd file not found"):
        CoaddBrick(tmp_path, BRICK)
