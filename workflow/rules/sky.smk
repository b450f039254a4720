# Raw DR10 inputs. With sky.source == "mock" the workflow renders the mock sky in DR10
# formats; with "dr10" the sweeps/coadds already exist at the configured paths.

wildcard_constraints:
    bri=r"\d{3}",
    brick=r"\d{4}[pm]\d{3}",
    sweep=r"sweep-\d{3}[pm]\d{3}-\d{3}[pm]\d{3}",


if SKY.mock:

    rule mock_brick:
        """Render one mock coadd brick (image + invvar in g, r, z) and its catalogue."""
        output:
            # DR10 layout coadd/<bri>/<brick>/..., <bri> = first three characters of <brick>
            coadds=[
                f"{SKY.coadd_dir}/{{bri}}/{{brick}}/legacysurvey-{{brick}}-{kind}-{band}.fits.fz"
                for kind in ("image", "invvar")
                for band in "grz"
            ],
            catalog=f"{RESULTS}/mock_sky/catalog/{{bri}}/{{brick}}.parquet",
        params:
            mock=MOCK,
        conda:
            "../../envs/lensfinder.yaml"
        log:
            f"{LOGS}/mock_brick/{{bri}}/{{brick}}.log",
        benchmark:
            f"{BENCH}/mock_brick/{{bri}}/{{brick}}.tsv"
        script:
            "../scripts/mock_brick.py"

    rule mock_sky:
        """Write one DR10-format sweep file, and its row-matched photo-z sweep, from the
        catalogues of the bricks it covers."""
        input:
            unpack(mock_brick_files),
        output:
            sweep=f"{SKY.sweep_dir}/{{sweep}}.fits",
            photoz=SKY.photoz_path("{sweep}"),
        conda:
            "../../envs/lensfinder.yaml"
        log:
            f"{LOGS}/mock_sky/{{sweep}}.log",
        benchmark:
            f"{BENCH}/mock_sky/{{sweep}}.tsv"
        script:
            "../scripts/mock_sky.py"
