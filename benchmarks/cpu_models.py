"""Which network fits a science run on 2 CPU cores: forward (scoring) and forward+backward
(training) images/s of candidate models on 64x64x3 stamps, built exactly as lensfinder builds
them (lensfinder.training.model), with ``torch.set_num_threads(threads)``.

    .venv/bin/python benchmarks/cpu_models.py [--threads 2] [--models stamp_cnn convnext_atto mobilenetv3_small_050 ...]

Prints one JSON object: per model, parameters and images/s (best of ``--repeats`` timed
passes after a warm-up).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from lensfinder.training.config import ModelConfig
from lensfinder.training.model import build_model

MODELS = ("stamp_cnn", "convnext_atto", "mobilenetv3_small_050", "mobilenetv3_small_100", "lcnet_050", "resnet10t", "regnetx_002")


def rate(step, batch: int, repeats: int, steps: int) -> float:
    step()  # warm-up
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        best = max(best, batch * steps / (time.perf_counter() - t0))
    return best


def measure(name: str, batch: int, repeats: int, steps: int) -> dict:
    model = build_model(ModelConfig.from_dict({"name": name}))
    x = torch.randn(batch, 3, 64, 64).to(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch,)).float()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    @torch.no_grad()
    def infer():
        model.eval()
        model(x)

    def train():
        model.train()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
        opt.step()

    return {"params": sum(p.numel() for p in model.parameters()),
            "infer_img_per_s": round(rate(infer, batch, repeats, steps), 1),
            "train_img_per_s": round(rate(train, batch, repeats, steps), 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = {"threads": a.threads, "batch": a.batch, "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
           "models": {m: measure(m, a.batch, a.repeats, a.steps) for m in a.models}}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
