"""Impossible settings are refused when read -- at workflow start -- naming the key (issue 32)."""

import pytest

from lensfinder.inject import InjectConfig
from lensfinder.population import Priors
from lensfinder.sky.mock_config import MockSkyConfig
from lensfinder.training.config import CONVNEXT_MODELS, MODELS, ConfigError, LoaderConfig, ModelConfig, TrainConfig


def test_model_names_come_from_the_one_registry():
    with pytest.raises(ConfigError, match=r"model.name: 'convnext_bogus' is not a known model.*convnext_tiny"):
        ModelConfig.from_dict({"name": "convnext_bogus"})
    for name in MODELS:
        assert ModelConfig.from_dict({"name": name}).name == name


def test_every_validated_model_name_has_a_builder():
    from lensfinder.training.model import TRUNKS
    assert set(TRUNKS) == set(MODELS)


def test_every_registered_convnext_exists_in_timm():
    timm = pytest.importorskip("timm")
    assert set(CONVNEXT_MODELS) <= set(timm.list_models("convnext_*"))


@pytest.mark.parametrize("scale", [{"g": 0, "r": 0, "z": 0}, {"g": 0.01, "r": -1, "z": 0.03}, {"g": 0.01, "r": 0.01}])
def test_asinh_scales_must_be_positive_for_each_band(scale):
    with pytest.raises(ConfigError, match="loader.asinh_scale"):
        LoaderConfig.from_dict({"asinh_scale": scale})


@pytest.mark.parametrize("train, key", [({"lr": 1e-4, "min_lr": 1e-3}, "min_lr"), ({"lr": 0}, "lr"),
                                        ({"epochs": 0}, "epochs"), ({"warmup_frac": 1.0}, "warmup_frac"),
                                        ({"focal_alpha": 1.5}, "focal_alpha")])
def test_impossible_training_settings(train, key):
    with pytest.raises(ConfigError, match=rf"train\.{key}:"):
        TrainConfig.from_dict(train)


@pytest.mark.parametrize("priors, key", [({"theta_e": [3.0, 0.8]}, "theta_e"), ({"source_re": [-0.1, 0.6]}, "source_re"),
                                         ({"source_mag_r": [25.0, 22.0]}, "source_mag_r"),
                                         ({"source_z": [0.0, 3.0]}, "source_z"),
                                         ({"source_g_r": [0.3, -0.2]}, "source_g_r"),
                                         ({"source_q": [0.4, 1.5]}, "source_q")])
def test_reversed_or_unphysical_prior_ranges(priors, key):
    with pytest.raises(ValueError, match=rf"priors\.{key}"):
        Priors.from_dict(priors)


def test_reversed_psf_range_and_extra_zeropoint_band():
    with pytest.raises(ValueError, match="sky.mock.psf_fwhm_range"):
        MockSkyConfig.from_dict({"bricks": ["1501p020"], "psf_fwhm_range": [1.6, 1.0]})
    with pytest.raises(ValueError, match="inject.zeropoint"):
        InjectConfig.from_dict({"zeropoint": {"g": 26.6, "r": 26.8, "z": 26.5, "i": 26.7}})
    assert InjectConfig.from_dict({}).zeropoint.keys() == {"g", "r", "z"}


# ---- one source for each choice: the schema agrees with the package (issue 29 item 2) ----

def _schema():
    import yaml

    from conftest import REPO
    return yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())


def _node(path: str):
    node = _schema()
    for key in path.strip("/").split("/"):
        node = node[int(key) if isinstance(node, list) else key]
    return node


RUN = "/properties/runs/additionalProperties/properties"
DATASET = "/properties/datasets/additionalProperties/properties"


def _enumerations():
    from lensfinder import psf, real_lenses
    from lensfinder.manifest import CONTROL_STRATEGIES, SPLIT_SCHEMES
    from lensfinder.population import SOURCE_MAG_MODELS, THETA_E_MODELS
    from lensfinder.sky.columns import MASKBITS
    from lensfinder.sky.cutout_source import CUTOUT_SOURCES
    from lensfinder.sky.source import SKY_SOURCES
    from lensfinder.stamps import STAMP_CODECS
    from lensfinder.training.config import ModelConfig as M, LoaderConfig as L, TrainConfig as T
    return {
        "/definitions/inject/properties/psf/properties/kind": psf.PSF_KINDS,
        "/definitions/inject/properties/stamp_compression": STAMP_CODECS,
        "/properties/sky/properties/source": SKY_SOURCES,
        "/properties/sky/properties/cutouts/properties/source": CUTOUT_SOURCES,
        "/properties/select/properties/maskbits/items": tuple(MASKBITS),
        f"{DATASET}/control": CONTROL_STRATEGIES,
        f"{DATASET}/split": SPLIT_SCHEMES,
        f"{DATASET}/priors/properties/theta_e_model": THETA_E_MODELS,
        f"{DATASET}/priors/properties/source_mag_model": SOURCE_MAG_MODELS,
        f"{RUN}/model/properties/output_stride": M.CHOICES["output_stride"],
        f"{RUN}/loader/properties/normalize": L.CHOICES["normalize"],
        **{f"{RUN}/train/properties/{k}": v for k, v in T.CHOICES.items()},
        "/properties/real_lenses/properties/footprint": real_lenses.FOOTPRINTS,
    }


def test_every_schema_enumeration_is_the_package_s():
    """A value the package accepts but the schema refuses (or the reverse) fails here; the
    schema's lists are checked copies, the package's tuples the source."""
    for path, package in _enumerations().items():
        assert set(_node(path)["enum"]) == set(package), path


def _sections():
    import dataclasses as dc

    from lensfinder.bench import BenchConfig
    from lensfinder.bench_region import BenchRegion
    from lensfinder.detectability import Criteria
    from lensfinder.manifest import DatasetConfig
    from lensfinder.parent_negatives import ParentNegativesConfig
    from lensfinder.psf import PsfConfig
    from lensfinder.real_lenses import RealLensesConfig
    from lensfinder.sky.cutout_source import CutoutSourceConfig
    from lensfinder.sky.false_positives import FalsePositiveConfig
    from lensfinder.training.config import EarlyStopping
    fields = lambda cls: {f.name for f in dc.fields(cls)}  # noqa: E731
    return {
        f"{RUN}/model": fields(ModelConfig), f"{RUN}/train": fields(TrainConfig),
        f"{RUN}/loader": fields(LoaderConfig) - {"metadata"},  # derived from model.metadata, not set
        f"{RUN}/train/properties/early_stopping": fields(EarlyStopping),
        # a dataset's name is its key; its parent negatives and inject overrides have their own classes
        "/properties/datasets/additionalProperties": fields(DatasetConfig) - {"name"} | {"parent_negatives", "inject"},
        f"{DATASET}/parent_negatives": fields(ParentNegativesConfig),
        f"{DATASET}/priors": fields(Priors),
        "/definitions/inject/properties/recognisable": fields(Criteria),
        "/definitions/inject/properties/psf": fields(PsfConfig),
        "/properties/sky/properties/cutouts": fields(CutoutSourceConfig),
        "/properties/sky/properties/mock": fields(MockSkyConfig),
        "/properties/sky/properties/mock/properties/false_positives": fields(FalsePositiveConfig),
        "/properties/real_lenses": fields(RealLensesConfig),
        "/properties/bench": fields(BenchConfig),
        "/properties/bench/properties/region": fields(BenchRegion),
    }


def test_every_schema_section_has_exactly_its_dataclass_s_keys():
    """A dataclass field the schema does not allow (a setting no config can reach), or a
    schema key no dataclass reads (silently ignored), fails here."""
    for path, fields in _sections().items():
        assert set(_node(path)["properties"]) == fields, path
    inject = set(InjectConfig.__dataclass_fields__)  # + the workflow's own: jobs per dataset, gallery size
    assert set(_node("/properties/inject/allOf/1/propertyNames")["enum"]) == inject | {"shards", "gallery_pairs"}
    assert set(_node(f"{DATASET}/inject/allOf/1/propertyNames")["enum"]) == inject
