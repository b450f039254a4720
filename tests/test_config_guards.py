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
