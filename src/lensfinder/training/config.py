"""A run's settings: the one place their defaults live, validated when read.

Torch-free, so the Snakefile builds every run's :class:`RunConfig` at workflow start: a
typo'd key, an unknown enumeration value or a metric name that early stopping cannot watch
fails there, naming the run, the key and the valid values, before any job runs. The
defaults are production settings (the request's ConvNeXt-Tiny, batch 256, lr 3e-4, 12
epochs); ``config/config.yaml`` overrides them for the 2-core demo and says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass, field

from lensfinder.contracts import HIGHER_IS_BETTER, metric_key


class ConfigError(ValueError):
    """A run setting that cannot work; the message names the key and the valid values."""


class StaleInput(RuntimeError):
    """A product of another configuration or other stamps was handed to a consumer."""


def _build(cls, d: dict | None, where: str, **fixed):
    """``cls(**d)`` with unknown keys and bad enumeration values reported by name."""
    d = dict(d or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(names)}")
    obj = cls(**{**d, **fixed})
    for key, valid in getattr(cls, "CHOICES", {}).items():
        if getattr(obj, key) not in valid:
            raise ConfigError(f"{where}.{key}: {getattr(obj, key)!r} is not one of {list(valid)}")
    return obj


# timm models small enough for a science run on 2 CPU cores (benchmarks/cpu_models.py);
# patch_size and output_stride are ConvNeXt's and do not apply to them.
SMALL_MODELS = ("mobilenetv3_small_050", "mobilenetv3_small_100", "lcnet_050", "resnet10t", "regnetx_002")
# lensfinder's own small CNN for 64x64 stamps (lensfinder.training.model.StampCNN): full
# resolution in its first stage, where timm's small networks have already downsampled 4x.
STAMP_CNN = "stamp_cnn"
# timm's ConvNeXt models (timm.list_models("convnext_*"); tests/test_train.py checks each
# against the installed timm). With SMALL_MODELS and STAMP_CNN: the one model registry --
# the schema, validation and lensfinder.training.model all read it.
CONVNEXT_MODELS = ("convnext_zepto_rms", "convnext_zepto_rms_ols", "convnext_atto", "convnext_atto_ols",
                   "convnext_atto_rms", "convnext_femto", "convnext_femto_ols", "convnext_pico", "convnext_pico_ols",
                   "convnext_nano", "convnext_nano_ols", "convnext_tiny", "convnext_tiny_hnf", "convnext_small",
                   "convnext_base", "convnext_large", "convnext_large_mlp", "convnext_xlarge", "convnext_xxlarge")
MODELS = (*CONVNEXT_MODELS, *SMALL_MODELS, STAMP_CNN)


@dataclass(frozen=True)
class ModelConfig:
    """The ``model`` section of a run."""

    name: str = "convnext_tiny"
    patch_size: int = 4
    output_stride: int = 16
    drop_rate: float = 0.1
    drop_path_rate: float = 0.1
    metadata: bool = False  # fuse PSF size/depth features via an MLP
    meta_hidden: int = 32
    channels_last: bool = True
    compile: bool = False
    widths: tuple[int, ...] = (8, 16, 32, 64, 128)  # stamp_cnn: channels per stage (2x pooled between)
    CHOICES = {"output_stride": (8, 16, 32)}

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "model") -> "ModelConfig":
        d = dict(d or {})
        if "widths" in d:
            d["widths"] = tuple(d["widths"])
        m = _build(cls, d, where)
        if m.name not in MODELS:
            raise ConfigError(f"{where}.name: {m.name!r} is not a known model; valid: {list(MODELS)}")
        if not m.widths or any(w < 1 for w in m.widths) or len(m.widths) > 6:
            raise ConfigError(f"{where}.widths: {list(m.widths)} must be 1 to 6 positive channel counts")
        return m


@dataclass(frozen=True)
class LoaderConfig:
    """The ``loader`` section of a run."""

    batch_size: int = 256
    num_workers: int = 2
    legacy_sharding: bool = False  # gen2's frags[rank::world] in every worker
    normalize: str = "asinh"  # asinh | none
    asinh_scale: dict = field(default_factory=lambda: {"g": 0.01, "r": 0.015, "z": 0.03})  # nanomaggies
    augment: bool = True  # random flips and 90-degree rotations (training only)
    metadata: bool = False  # deliver PSF size / depth features for the fusion head
    # the share of the training split trained on (learning curves); the subset is drawn by
    # sample_id alone, so a smaller fraction's rows are a subset of a larger one's
    train_fraction: float = 1.0
    CHOICES = {"normalize": ("asinh", "none")}

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "loader", **fixed) -> "LoaderConfig":
        cfg = _build(cls, d, where, **fixed)
        s = cfg.asinh_scale
        if not isinstance(s, dict) or set(s) != set("grz") or not all(float(v) > 0 for v in s.values()):
            raise ConfigError(f"{where}.asinh_scale: {s!r} must give a positive scale (nanomaggies) for each of g, r, z")
        if not 0 < cfg.train_fraction <= 1:
            raise ConfigError(f"{where}.train_fraction: {cfg.train_fraction!r} must lie in (0, 1]")
        if cfg.batch_size < 1 or cfg.num_workers < 0:
            raise ConfigError(f"{where}: batch_size must be >= 1 and num_workers >= 0 "
                              f"(got {cfg.batch_size}, {cfg.num_workers})")
        return cfg


@dataclass(frozen=True)
class EarlyStopping:
    enabled: bool = True
    metric: str = metric_key(1e-3)
    tiebreak: str = "pauc"
    patience: int = 3
    min_delta: float = 0.0
    CHOICES = {"metric": HIGHER_IS_BETTER, "tiebreak": HIGHER_IS_BETTER}


@dataclass(frozen=True)
class TrainConfig:
    """The ``train`` section of a run."""

    epochs: int = 12
    lr: float = 3e-4
    weight_decay: float = 1e-2
    warmup_frac: float = 0.05
    min_lr: float = 1e-6
    schedule: str = "cosine_steps"  # cosine_steps | gen2_epoch_tmax_per_step
    loss: str = "bce"  # bce | focal
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    precision: str = "auto"  # auto: bf16 autocast on GPU, fp32 on CPU | bf16 | fp16 | fp32
    grad_clip: float = 1.0  # max grad norm; 0 disables
    ema_decay: float = 0.0  # 0 disables the EMA of weights
    eval_score_dtype: str = "logit_float32"  # gen2: prob_bfloat16
    # LR for the effective batch (batch_size x world size): lr x f(effective / reference)
    # with f = linear (Goyal et al. 2017) or sqrt (common for AdamW); none keeps lr.
    lr_scaling: str = "none"
    lr_reference_batch: int = 256
    early_stopping: EarlyStopping = EarlyStopping()
    stop_after_steps: int = 0  # testing aid: behave as if SIGTERM arrived after this many steps
    CHOICES = {
        "schedule": ("cosine_steps", "gen2_epoch_tmax_per_step"),
        "loss": ("bce", "focal"),
        "precision": ("auto", "bf16", "fp16", "fp32"),
        "eval_score_dtype": ("logit_float32", "prob_float32", "prob_float16", "prob_bfloat16"),
        "lr_scaling": ("none", "linear", "sqrt"),
    }

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "train") -> "TrainConfig":
        d = dict(d or {})
        es = _build(EarlyStopping, d.get("early_stopping"), f"{where}.early_stopping")
        cfg = _build(cls, {**d, "early_stopping": es}, where)
        checks = {"epochs": cfg.epochs >= 1, "lr": cfg.lr > 0, "min_lr": 0 <= cfg.min_lr <= cfg.lr,
                  "warmup_frac": 0 <= cfg.warmup_frac < 1, "grad_clip": cfg.grad_clip >= 0,
                  "ema_decay": 0 <= cfg.ema_decay < 1, "weight_decay": cfg.weight_decay >= 0,
                  "focal_gamma": cfg.focal_gamma >= 0, "focal_alpha": 0 < cfg.focal_alpha < 1,
                  "lr_reference_batch": cfg.lr_reference_batch >= 1}
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"{where}.{bad[0]}: {getattr(cfg, bad[0])!r} is impossible (need epochs >= 1, lr > 0, "
                              "0 <= min_lr <= lr, 0 <= warmup_frac < 1, grad_clip >= 0, 0 <= ema_decay < 1, "
                              "weight_decay >= 0, focal_gamma >= 0, 0 < focal_alpha < 1, lr_reference_batch >= 1)")
        return cfg


@dataclass(frozen=True)
class RunConfig:
    name: str
    seed: int
    model: ModelConfig = ModelConfig()
    loader: LoaderConfig = LoaderConfig()
    train: TrainConfig = TrainConfig()

    @classmethod
    def from_dict(cls, name: str, seed: int, d: dict) -> "RunConfig":
        """``d``: a run's ``model`` / ``loader`` / ``train`` sections (other keys, such as
        ``dataset`` and ``nproc``, are the workflow's and ignored here)."""
        where = f"runs.{name}"
        model = ModelConfig.from_dict(d.get("model"), f"{where}.model")
        # the loader delivers metadata exactly when the model fuses it
        loader = LoaderConfig.from_dict(d.get("loader"), f"{where}.loader", metadata=model.metadata)
        return cls(name=name, seed=seed, model=model, loader=loader,
                   train=TrainConfig.from_dict(d.get("train"), f"{where}.train"))

    def sections(self) -> dict:
        """model / loader / train with every default filled (what ``from_dict`` reads back)."""
        d = asdict(self)
        d["loader"].pop("metadata")  # derived from model.metadata
        return {k: d[k] for k in ("model", "loader", "train")}

    def fingerprint(self) -> str:
        """Hash of everything that shapes the training trajectory (not the stop aid)."""
        d = asdict(self)
        d["train"].pop("stop_after_steps")
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_config_record(cfg: RunConfig, dataset: str, nproc: int, stamps: list[str]) -> dict:
    """The content of ``runs/<run>/run_config.json``: every setting with defaults filled,
    the dataset and stamp files it trains on, and the fingerprint products are checked by."""
    return {"name": cfg.name, "seed": cfg.seed, "fingerprint": cfg.fingerprint(), "dataset": dataset,
            "nproc": int(nproc), "stamps": [str(s) for s in stamps], "run": cfg.sections()}


def require_same_run(product_path, found_fingerprint, cfg: "RunConfig", run_config_path) -> None:
    """Refuse a run product (checkpoint, history) trained by another configuration than
    ``run_config_path``'s, naming both files and the rule that remakes it."""
    if found_fingerprint != cfg.fingerprint():
        raise StaleInput(f"{product_path} was trained with configuration {found_fingerprint}, but {run_config_path} "
                         f"is {cfg.fingerprint()}: retrain the run (snakemake train_{cfg.name})")


def load_run_config(path) -> tuple[RunConfig, dict]:
    """(RunConfig, record) of a ``run_config.json``. Refuses a file whose recorded
    fingerprint is not what this package computes from its settings (written by another
    lensfinder version: rerun the ``run_config`` rule)."""
    from pathlib import Path

    try:
        rec = json.loads(Path(path).read_text())
        cfg = RunConfig.from_dict(rec["name"], rec["seed"], rec["run"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a readable run_config.json ({exc})") from exc
    if rec.get("fingerprint") != cfg.fingerprint():
        raise ConfigError(f"{path}: recorded fingerprint {rec.get('fingerprint')} is not {cfg.fingerprint()} "
                          "computed from its settings; rerun its run_config rule")
    return cfg, rec


def replicate_name(run: str, k: int) -> str:
    """The k-th seed (1-based) of ``run``: the first keeps the run's own name."""
    return run if k == 1 else f"{run}_rep{k}"


def seed_replicates(runs: dict, default_seed: int) -> tuple[dict, dict]:
    """Expand ``runs.<run>.seeds`` into one trained run per seed.

    Returns ({instance name: run config with its ``seed``}, {run: [instance names]}). A run
    without ``seeds`` trains once with ``default_seed`` (the config's ``seed``). The seeds
    themselves (distinct integers, at least one) are checked by the config schema."""
    configs, replicates = {}, {}
    for run, cfg in runs.items():
        seeds = cfg.get("seeds", [default_seed])
        base = {k: v for k, v in cfg.items() if k != "seeds"}
        replicates[run] = [replicate_name(run, k) for k in range(1, len(seeds) + 1)]
        for name, seed in zip(replicates[run], seeds):
            if name in configs or (name != run and name in runs):
                raise ValueError(f"runs.{run}.seeds: replicate name {name!r} is already a run")
            configs[name] = {**base, "seed": seed}
    return configs, replicates
