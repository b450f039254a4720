"""lensfinder: strong-lens finding in DESI Legacy Imaging Surveys DR10 (DECaLS).

Modules in data-flow order (a module imports only earlier ones); docs/architecture.md's module
table says what each holds:

    tables, photometry, psf, noise
    sky.columns, sky.bricks, sky.shapes, sky.crossmatch, sky.false_positives, sky.mock_config,
    sky.counts, sky.lrg_model, sky.profiles, sky.scene, sky.render, sky.mock, sky.sweeps, sky.coadds,
    sky.cutout_service, sky.cutout_source, sky.psf_images, sky.source
                                        raw DR10 data (or the mock sky)
    select                              phase 3: the LRG parent sample
    seeding, population, manifest       phase 4a
    lensing, detectability, stamps, inject     phase 4c
    contracts, metrics, plots, pages, gallery, flux_baseline, mock_realism
    training.*                          phase 5 (config -> data -> ... -> fit -> launch)
    evaluate, candidates
    gen2.*                              the gen2 case study (never imported by the above)
"""

__version__ = "0.1.0"

BANDS = ("g", "r", "z")
"""Optical bands of every stamp, in channel order."""

PIXSCALE = 0.262
"""DECam Legacy Surveys coadd pixel scale, arcsec per pixel."""

STAMP_SIZE = 64
"""Stamp side length, pixels."""
