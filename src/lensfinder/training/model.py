"""Phase 5 model: a timm ConvNeXt adapted to 64x64 stamps (or, for science runs on a few
CPU cores, :class:`StampCNN` or one of timm's small mobile networks), one logit out, with
an optional metadata-fusion head (PSF size and depth).

timm's ConvNeXt stem is a 4x4/stride-4 patchify; with four stages a 64x64 input ends at
2x2. ``patch_size`` (stem) and ``output_stride`` (16 dilates the last stage) keep larger
maps: the default patch 4 / output stride 16 ends at 4x4. Weights are random
(``pretrained=False``): nothing is downloaded.
"""

from __future__ import annotations

import torch
from torch import nn

from lensfinder.training.config import CONVNEXT_MODELS, MODELS, SMALL_MODELS, STAMP_CNN, ModelConfig


class StampCNN(nn.Module):
    """A small plain CNN for 64x64 stamps: per stage two 3x3 conv-BN-ReLU, a 2x2 max-pool
    between stages, global average pooling; (B, 3, 64, 64) -> (B, widths[-1]).

    Written here because timm's small networks (mobilenetv3, lcnet, resnet10t, regnetx)
    halve the resolution in their stem and again in their first block: arcs of theta_E ~
    1.3-2" lie 5-8 pixels from the centre at 0.262"/pix, and what separates them from a
    ring or a companion is lost at 16x16. On the same matched mock data (2,526 + 2,526
    training stamps, 12 epochs) this net (width 8 at full resolution) reached test AUC 0.92
    against 0.79 for mobilenetv3_small_050, at a similar CPU training rate (~700 img/s on 2
    cores; benchmarks/cpu_models.py)."""

    def __init__(self, widths=(8, 16, 32, 64, 128)):
        super().__init__()
        layers, c_in = [], 3
        for i, c in enumerate(widths):
            if i:
                layers.append(nn.MaxPool2d(2))
            for k in range(2):
                layers += [nn.Conv2d(c_in if k == 0 else c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                           nn.ReLU(inplace=True)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.num_features = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


def _timm_trunk(cfg: ModelConfig) -> nn.Module:
    import timm  # imported here: it costs ~3 s per job (torchvision, torch._dynamo), stamp_cnn needs none

    convnext = cfg.name in CONVNEXT_MODELS  # ConvNeXt's stem settings do not apply to the others
    stem = {"patch_size": cfg.patch_size, "output_stride": cfg.output_stride} if convnext else {}
    return timm.create_model(cfg.name, pretrained=False, num_classes=0, in_chans=3,
                             drop_path_rate=cfg.drop_path_rate, **stem)


# The model registry: name -> trunk builder, for every name validation accepts
# (lensfinder.training.config.MODELS, torch-free; tests/test_config_guards.py checks they agree).
TRUNKS = {STAMP_CNN: lambda cfg: StampCNN(cfg.widths), **{n: _timm_trunk for n in (*CONVNEXT_MODELS, *SMALL_MODELS)}}


class LensClassifier(nn.Module):
    """trunk (:data:`TRUNKS`) -> pooled features (+ metadata MLP) -> dropout -> 1 logit."""

    def __init__(self, cfg: ModelConfig, n_meta: int = 6):
        super().__init__()
        if cfg.name not in TRUNKS:
            raise ValueError(f"model.name must be one of {MODELS}, not {cfg.name!r}")
        self.trunk = TRUNKS[cfg.name](cfg)
        # pooled feature width; mobile networks end in a wider conv head after num_features
        width = getattr(self.trunk, "head_hidden_size", None) or self.trunk.num_features
        self.meta = None
        if cfg.metadata:
            self.meta = nn.Sequential(nn.Linear(n_meta, cfg.meta_hidden), nn.GELU(),
                                      nn.Linear(cfg.meta_hidden, cfg.meta_hidden), nn.GELU())
            width += cfg.meta_hidden
        self.head = nn.Sequential(nn.Dropout(cfg.drop_rate), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, 3, 64, 64) -> logits (B,)."""
        f = self.trunk(x)
        if self.meta is not None:
            if meta is None:
                raise ValueError("this model fuses metadata: pass meta (B, 6)")
            f = torch.cat([f, self.meta(meta.to(f.dtype))], dim=1)
        return self.head(f).squeeze(1)


def build_model(cfg: ModelConfig) -> nn.Module:
    model = LensClassifier(cfg)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model

