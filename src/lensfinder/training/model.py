"""Phase 5 model: a timm ConvNeXt adapted to 64x64 stamps (or, for science runs on a few
CPU cores, one of timm's small mobile networks), one logit out, with an optional
metadata-fusion head (PSF size and depth).

timm's ConvNeXt stem is a 4x4/stride-4 patchify; with four stages a 64x64 input ends at
2x2. ``patch_size`` (stem) and ``output_stride`` (16 dilates the last stage) keep larger
maps: the default patch 4 / output stride 16 ends at 4x4. Weights are random
(``pretrained=False``): nothing is downloaded.
"""

from __future__ import annotations

import timm
import torch
from torch import nn

from lensfinder.training.config import SMALL_MODELS, ModelConfig


class LensClassifier(nn.Module):
    """timm trunk -> pooled features (+ metadata MLP) -> dropout -> 1 logit."""

    def __init__(self, cfg: ModelConfig, n_meta: int = 6):
        super().__init__()
        convnext = cfg.name.startswith("convnext")
        if not (convnext or cfg.name in SMALL_MODELS):
            raise ValueError(f"model.name must be a timm convnext_* model or one of {SMALL_MODELS}, not {cfg.name!r}")
        stem = {"patch_size": cfg.patch_size, "output_stride": cfg.output_stride} if convnext else {}
        self.trunk = timm.create_model(cfg.name, pretrained=False, num_classes=0, in_chans=3,
                                       drop_path_rate=cfg.drop_path_rate, **stem)
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


def final_feature_map(cfg: ModelConfig, size: int = 64) -> tuple[int, int]:
    """Spatial size of the trunk's last feature map for a ``size`` x ``size`` input."""
    trunk = build_model(cfg).trunk
    with torch.no_grad():
        return tuple(trunk.forward_features(torch.zeros(1, 3, size, size)).shape[-2:])
