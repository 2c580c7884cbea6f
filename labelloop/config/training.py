"""The ``training`` section: the stratified k-fold committee (network sizes, optimisation, augmentation, device)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from labelloop.config.base import Section

__all__ = ["TrainingConfig", "CNNConfig", "MLPConfig", "FeatureNoiseConfig"]


class CNNConfig(Section):
    """Sizes of the image CNN (conv3x3-BN-ReLU-maxpool blocks, then a head)."""

    channels: list[int] = Field(default_factory=lambda: [32, 64], description="Output channels of each block.")
    hidden: int = Field(default=128, ge=0, description="Hidden fully connected width; 0 for none.")
    batch_norm: bool = True
    global_pool: bool = Field(default=True, description="Global average pooling (else flatten the last map).")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    image_size: int | None = Field(
        default=None, ge=4, description="Image files are resized to this square size; default: as stored."
    )
    grayscale: bool = Field(default=False, description="Load image files as one channel (else RGB).")

    @field_validator("channels")
    @classmethod
    def _positive_channels(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("needs at least one block")
        bad = [c for c in value if c < 1]
        if bad:
            raise ValueError(f"every block needs >= 1 channel (got {value})")
        return value


class MLPConfig(Section):
    """Sizes of the MLP head for text embeddings and tabular features."""

    hidden: list[int] = Field(default_factory=lambda: [256], description="Hidden widths; [] for a linear model.")
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)

    @field_validator("hidden")
    @classmethod
    def _positive_hidden(cls, value: list[int]) -> list[int]:
        if any(h < 1 for h in value):
            raise ValueError(f"every hidden width must be >= 1 (got {value})")
        return value


class FeatureNoiseConfig(Section):
    """Embedding-space augmentation for the MLP (text/tabular): noise and feature dropout."""

    noise: float = Field(default=0.0, ge=0.0, description="Gaussian noise, in units of each feature's std.")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="Probability of zeroing a feature.")


class TrainingConfig(Section):
    """The stratified k-fold model stage."""

    folds: int = Field(default=5, ge=2, le=20, description="Number of stratified folds.")
    seed: int = Field(default=0, description="Seed for folds and models.")
    model: Literal["auto", "logreg", "mlp", "cnn"] = Field(
        default="auto",
        description="auto = cnn for images, mlp for text (MiniLM embeddings) and tabular; logreg = a linear model "
        "on the modality's features.",
    )
    max_pool_rows: int | None = Field(
        default=200_000, ge=0,
        description="Pool predictions also written as `model` label rows up to this pool size (the files under "
        "data_dir always hold all of them); null = always.",
    )
    min_confidence: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Soft labels below this confidence are not trained on."
    )
    cnn: CNNConfig = Field(default_factory=CNNConfig)
    mlp: MLPConfig = Field(default_factory=MLPConfig)
    logreg_c: float = Field(default=1.0, gt=0.0, description="Inverse regularisation of the logreg model.")
    epochs: int = Field(default=20, ge=1, le=10000)
    min_steps: int = Field(
        default=200, ge=0, description="At least this many optimizer steps: small training sets get more epochs."
    )
    batch_size: int = Field(default=64, ge=2)
    lr: float = Field(default=1e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    schedule: Literal["cosine", "constant"] = "cosine"
    patience: int | None = Field(
        default=5, ge=1, description="Early stopping on each fold's validation split; null trains every epoch."
    )
    loss: Literal["cross_entropy", "focal"] = "cross_entropy"
    focal_gamma: float = Field(default=2.0, ge=0.0)
    class_weight: Literal["balanced"] | list[float] | None = Field(
        default=None, description="'balanced' or one weight per class."
    )
    augment: list[Any] = Field(
        default_factory=list,
        description="albumentations transforms for training images, e.g. "
        "[{Affine: {rotate: [-10, 10]}}, {GaussNoise: {std_range: [0.03, 0.08]}}]; for text (model mlp): "
        "[{BackTranslation: {pivots: [spa, cat], batch_size: 500, weight: 1.0}}, "
        "{SynonymReplacement: {p: 0.15, copies: 1, senses: 1, seed: 0, weight: 1.0}}] "
        "(Apertium and WordNet, offline; copies cached under data_dir/cache).",
    )
    feature_noise: FeatureNoiseConfig = Field(default_factory=FeatureNoiseConfig)
    tta: int = Field(default=0, ge=0, le=32, description="Augmented copies averaged into pool predictions.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = Field(default=True, description="Mixed precision on CUDA (bf16 where supported, else fp16).")
    calibrate: bool = Field(default=True, description="Temperature scaling fitted on out-of-fold logits.")
    parallel_folds: int | None = Field(
        default=None, ge=1, description="Folds per batched network (and per Prefect task); default: automatic."
    )
    n_jobs: int | None = Field(
        default=None, ge=1, description="CPU workers (one torch thread each) splitting the folds; default 1."
    )

    @field_validator("class_weight")
    @classmethod
    def _weights_positive(cls, value: Any) -> Any:
        if isinstance(value, list) and any(not w >= 0 for w in value):
            raise ValueError(f"class weights must be >= 0 (got {value})")
        return value

    @field_validator("augment")
    @classmethod
    def _known_transforms(cls, value: list[Any]) -> list[Any]:
        if value:
            # --- text augmentation (issue 13): text transforms are checked by their own module.
            from labelloop.models.text_augment import is_text_entry, parse_text_pipeline

            text = [is_text_entry(e) for e in value]
            if any(text) and not all(text):
                raise ValueError("text transforms (BackTranslation, SynonymReplacement) and image transforms cannot be mixed")
            if all(text):
                parse_text_pipeline(value)
                return value
            # Built with albumentations itself, so its own parameter rules apply.
            from labelloop.models.augment import parse_pipeline

            parse_pipeline(value)
        return value

    @property
    def text_augment(self) -> list[Any]:
        """The ``augment`` entries when they are text transforms (else [])."""
        from labelloop.models.text_augment import is_text_entry

        return self.augment if self.augment and is_text_entry(self.augment[0]) else []

    @model_validator(mode="after")
    def _augment_needs_images(self) -> "TrainingConfig":
        if self.text_augment:
            if self.model not in ("mlp", "auto"):
                raise ValueError(f"text augmentation applies to model 'mlp' (MiniLM embeddings) only (got model {self.model!r})")
        elif self.augment and self.model not in ("cnn", "auto"):
            raise ValueError(f"augment applies to model 'cnn' only (got model {self.model!r}); use feature_noise")
        if self.tta and not self.augment:
            raise ValueError(f"tta: {self.tta} needs an augment pipeline")
        if self.tta and self.text_augment:
            raise ValueError(f"tta: {self.tta} applies to image augmentation only (text copies are made for training)")
        return self
