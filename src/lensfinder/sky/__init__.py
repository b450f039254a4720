"""Raw DR10 data: the column spec, brick geometry, the mock sky that writes DR10 formats,
and the readers (sweeps, local coadd cutouts, the public cutout service).

The same readers serve mock and real data, so the default (mock) run exercises the
real-data code path.
"""
