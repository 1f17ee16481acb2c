"""Zero-shot labels: point embeddings against the text embeddings of a free-text vocabulary.

The one classifier the node, the offline labeller, evaluation and the demo share. The vocabulary can
change at run time (a ROS parameter): it is re-embedded (from the on-disk cache when possible) and
swapped in as one immutable object, so a frame being classified on the worker thread sees either the
old or the new vocabulary, never a mix; the encoder is never touched.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from blendclip_core.normalization import (
    DEFAULT_CAP,
    NORMALIZATIONS,
    append_box_size,
    box_size_input,
    normalize_objects,
    points_box_size,
)
from blendclip_core.text_space import (
    CachedTextSpace,
    TextEmbeddingCache,
    TextSpace,
    build_zero_shot_classifier,
    create_text_space,
)
from blendclip_core.text_space.base import resolve_device
from blendclip_core.types import ObjectBatch, ObjectStatus, Predictions
from blendclip_core.vocabulary import (
    DEFAULT_TEMPLATES,
    DRIVING,
    VocabularyError,  # noqa: F401 - raised by validate_vocabulary; callers catch it from here too
    validate_vocabulary,
    vocabulary_version,
)

logger = logging.getLogger(__name__)

DEFAULT_LOGIT_SCALE = 100.0  # CLIP's trained (clamped) temperature, when a checkpoint records none
TEXT_CACHE_SUFFIX = '.text_cache.npz'  # shipped beside a checkpoint: its vocabulary without the model


class ClassifierError(ValueError):
    """A classifier that cannot be built as asked (dimension mismatch, missing text space)."""


@dataclass(frozen=True)
class EmbeddedVocabulary:
    """Labels, templates and their (V, D) normalised text embeddings on the classifier's device."""

    labels: tuple[str, ...]
    templates: tuple[str, ...]
    embeddings: torch.Tensor
    version: str


PRECISIONS = ('bf16', 'fp32')


class ZeroShotClassifier:
    """Encoder + text space + vocabulary -> top-k labels with calibrated scores.

    encoder: a model with `encode(ObjectBatch) -> (B, D)` (blendclip_core.encoder.PointEncoder).
    device: 'auto' (cuda when available), 'cuda', 'cpu'; an unavailable cuda falls back to the CPU
        with a warning. On CUDA the encoder runs under bf16 autocast unless precision is 'fp32';
        similarities are fp32.
    precision: 'bf16' or 'fp32', the encoder's precision on CUDA (the model card's
        inference_precision when built from a checkpoint).
    logit_scale: temperature of the softmax over cosine similarities (the checkpoint's learned one;
        CLIP's 100 when None), so scores are the probabilities the model was trained to produce.
    cache_dir: where per-label text embeddings are cached (None: no disk cache).
    input_normalization: what the encoder was trained on ('metric' or 'unit_sphere', the model card's);
        applied by `embed` to every batch, so every caller feeds the encoder alike. input_cap: 'fps' or
        'uniform' above input_max_points ('': the kind's default); input_max_points None: the encoder's.
    """

    def __init__(self, encoder, text_space: TextSpace, labels: Sequence[str] = DRIVING,
                 templates: Sequence[str] = DEFAULT_TEMPLATES, *, device: str = 'auto', top_k: int = 5,
                 logit_scale: float | None = None, cache_dir: str | Path | None = None,
                 model_name: str = '', precision: str = 'bf16', input_normalization: str = 'metric',
                 input_cap: str = '', input_max_points: int | None = None) -> None:
        if input_normalization not in NORMALIZATIONS:
            raise ClassifierError(f'input_normalization must be one of {NORMALIZATIONS}, '
                                  f'got {input_normalization!r}')
        if precision not in PRECISIONS:
            raise ClassifierError(f'precision must be one of {PRECISIONS}, got {precision!r}')
        if top_k < 1:
            raise ClassifierError(f'top_k must be >= 1, got {top_k}')
        scale = DEFAULT_LOGIT_SCALE if logit_scale is None else float(logit_scale)
        if not math.isfinite(scale) or scale <= 0:
            raise ClassifierError(f'logit_scale must be a positive number, got {logit_scale}')
        self.device = resolve_device(device)
        self.encoder = encoder.to(self.device).eval()
        if self.device.type == 'cuda' and hasattr(self.encoder, 'enable_cuda_graphs'):
            self.encoder.enable_cuda_graphs()  # one graph per rounded frame size: ~3x lower latency
        self.text_space = text_space
        self.top_k = int(top_k)
        self.logit_scale = scale
        self.cache_dir = cache_dir
        self.model_name = model_name
        self.precision = precision
        self.input_normalization = input_normalization
        self.input_cap = input_cap or DEFAULT_CAP[input_normalization]
        encoder_cap = getattr(getattr(encoder, 'config', None), 'max_points', 0)
        self.input_max_points = int(input_max_points or encoder_cap or np.iinfo(np.int32).max)
        embed_dim = getattr(encoder, 'embed_dim', None)
        if embed_dim is not None and text_space.dim != embed_dim:
            raise ClassifierError(f'encoder embeds into {embed_dim} dimensions but text space '
                                  f'{text_space.spec} has {text_space.dim}: they were not trained together')
        self._vocab: EmbeddedVocabulary | None = None
        self.set_vocabulary(labels, templates)

    # ----------------------------------------------------------------------------------- vocabulary

    @property
    def vocabulary(self) -> EmbeddedVocabulary:
        return self._vocab

    @property
    def labels(self) -> tuple[str, ...]:
        return self._vocab.labels

    @property
    def templates(self) -> tuple[str, ...]:
        return self._vocab.templates

    @property
    def vocabulary_version(self) -> str:
        return self._vocab.version

    @property
    def text_space_spec(self) -> str:
        return self.text_space.spec

    def set_vocabulary(self, labels: Sequence[str],
                       templates: Sequence[str] | None = None) -> EmbeddedVocabulary:
        """Embed a new vocabulary and swap it in atomically; the encoder is not touched.

        templates=None keeps the current ones. Raises VocabularyError (nothing changes) on bad input.
        """
        return self.use_vocabulary(self.build_vocabulary(labels, templates))

    def build_vocabulary(self, labels: Sequence[str], templates: Sequence[str] | None = None,
                         device: str | torch.device | None = None) -> EmbeddedVocabulary:
        """Embed a vocabulary without using it (the slow part: callers may run it on another thread
        while this classifier keeps classifying). device: where the embeddings go (default: the
        classifier's; 'cpu' leaves the copy to `use_vocabulary`). Raises VocabularyError on bad input."""
        if templates is None:
            templates = self._vocab.templates if self._vocab is not None else DEFAULT_TEMPLATES
        labels, templates = validate_vocabulary(labels, templates)
        emb = build_zero_shot_classifier(self.text_space, labels, templates, self.cache_dir)
        version = vocabulary_version(labels, templates, self.text_space.cache_key)
        return EmbeddedVocabulary(labels, templates, emb.to(device or self.device), version)

    def use_vocabulary(self, vocab: EmbeddedVocabulary) -> EmbeddedVocabulary:
        """Swap in a built vocabulary (its embeddings moved to this classifier's device first)."""
        if vocab.embeddings.device != self.device:
            vocab = dataclasses.replace(vocab, embeddings=vocab.embeddings.to(self.device))
        self._vocab = vocab  # one reference assignment: readers see the old or the new, whole
        logger.info('vocabulary %s: %d labels x %d templates', vocab.version, len(vocab.labels),
                    len(vocab.templates))
        return vocab

    # -------------------------------------------------------------------------------- classification

    def classify(self, batch: ObjectBatch, status: np.ndarray | None = None,
                 top_k: int | None = None) -> Predictions:
        """Labels for every object of `batch` in one encoder call.

        status: per-object ObjectStatus from cropping; only OK objects with points are encoded, the
        others keep their status (objects with 0 points become NO_POINTS) with index -1, score NaN.
        """
        vocab = self._vocab  # read once: a concurrent set_vocabulary never mixes vocabularies
        return classify_objects(batch, status, min(int(top_k or self.top_k), len(vocab.labels)), vocab,
                                lambda sub: self.vocabulary_logits(sub, vocab))

    def vocabulary_logits(self, batch: ObjectBatch, vocab: EmbeddedVocabulary) -> torch.Tensor:
        """(B, V) logit_scale * cosine similarity of the objects of `batch` to `vocab` (the hook a
        combined classifier averages)."""
        return self.logit_scale * self.embed(batch) @ vocab.embeddings.T

    def prepare_inputs(self, batch: ObjectBatch) -> ObjectBatch:
        """Cropped objects -> the encoder's inputs: the model's input normalisation and cap, once. A
        model that takes the box size and gets objects without it (label_frame appends the detector's
        box; predict and mined objects have none) gets each object's own extent (points_box_size)."""
        if box_size_input(self.encoder) and batch.points.shape[1] == self.encoder.config.in_channels - 3:
            batch = append_box_size(batch, points_box_size(batch))
        return normalize_objects(batch, self.input_normalization, self.input_max_points, self.input_cap,
                                 device=self.device)

    def embed(self, batch: ObjectBatch) -> torch.Tensor:
        """(B, D) L2-normalised fp32 point embeddings on the classifier's device, of cropped objects
        (normalised here by `prepare_inputs`)."""
        batch = self.prepare_inputs(batch)
        with torch.inference_mode():
            if self.device.type == 'cuda' and self.precision == 'bf16':
                with torch.autocast('cuda', dtype=torch.bfloat16):
                    emb = self.encoder.encode(batch)
            else:
                emb = self.encoder.encode(batch)
            return torch.nn.functional.normalize(emb.float(), dim=-1)

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, V) logit_scale * cosine similarity of point embeddings to the vocabulary."""
        vocab = self._vocab
        emb = torch.nn.functional.normalize(embeddings.to(self.device).float(), dim=-1)
        return self.logit_scale * emb @ vocab.embeddings.T

    def classify_embeddings(self, embeddings: torch.Tensor, top_k: int | None = None) -> Predictions:
        """Predictions for precomputed point embeddings (num_points is unknown here: 0)."""
        vocab = self._vocab
        n = len(embeddings)
        k = min(int(top_k or self.top_k), len(vocab.labels))
        with torch.inference_mode():
            emb = torch.nn.functional.normalize(embeddings.to(self.device).float(), dim=-1)
            idx, sc = top_k_probabilities(self.logit_scale * emb @ vocab.embeddings.T, k)
        return Predictions(idx, sc, np.zeros(n, np.int64), np.full(n, ObjectStatus.OK, np.int64),
                           vocab.labels, vocab.version)

    # ---------------------------------------------------------------------------------- construction

    @classmethod
    def from_checkpoint(cls, path: str | Path | None, labels: Sequence[str] | None = None,
                        templates: Sequence[str] | None = None, *, vocabulary: Sequence[str] | None = None,
                        device: str = 'auto', text_space: TextSpace | str | None = None, top_k: int = 5,
                        logit_scale: float | None = None, cache_dir: str | Path | None = None,
                        input_normalization: str | None = None) -> ZeroShotClassifier:
        """Encoder and model card from a checkpoint; the text space from the card (or given).

        path None: the packaged default model. labels (alias `vocabulary`), None or empty: the driving
        vocabulary; templates, None or empty: the card's.
        A text cache shipped beside the checkpoint (<name>.text_cache.npz) answers known prompts
        without loading the text model. input_normalization: for a card that does not record it (refused
        otherwise; see checkpoint.load_checkpoint); the card's is used when None.
        """
        from blendclip_core.checkpoint import default_checkpoint_path, load_checkpoint

        if path is None or str(path) == '':
            path = default_checkpoint_path()
            if path is None:
                raise ClassifierError('no checkpoint given and no packaged default model found')
        path = Path(path)
        encoder, card = load_checkpoint(path, map_location='cpu', input_normalization=input_normalization)
        if isinstance(text_space, str) or text_space is None:
            text_space = text_space_for_checkpoint(path, text_space or card.text_space)
        labels = labels if labels is not None else vocabulary
        templates = templates or card.prompt_templates or DEFAULT_TEMPLATES
        scale = logit_scale if logit_scale is not None else getattr(card, 'logit_scale', None)
        return cls(encoder, text_space, list(labels) if labels else DRIVING, list(templates), device=device,
                   top_k=top_k, logit_scale=scale, cache_dir=cache_dir, model_name=card.name or path.stem,
                   precision=card.inference_precision, input_normalization=card.input_normalization,
                   input_cap=card.cap, input_max_points=card.max_points)


def text_space_for_checkpoint(path: str | Path, spec: str, device: str = 'cpu') -> TextSpace:
    """The text space a checkpoint was trained into, served from its shipped cache when there is one."""
    if not spec:
        raise ClassifierError(f'{path}: the model card names no text space; pass text_space=<spec>')
    cache_file = Path(path).with_suffix(TEXT_CACHE_SUFFIX)
    if cache_file.is_file():
        cache = TextEmbeddingCache.load(cache_file)
        if cache.spec == spec:
            logger.info('text embeddings from %s (%d texts); %s loads only for new prompts',
                        cache_file, len(cache), spec)
            return CachedTextSpace(spec, cache, fallback=lambda: create_text_space(spec, device))
        logger.warning('ignoring %s: it holds %s, the card says %s', cache_file, cache.spec, spec)
    return create_text_space(spec, device)


def select_objects(batch: ObjectBatch, mask: np.ndarray) -> ObjectBatch:
    """The objects of `batch` where mask is True, packed (vectorised, no per-object loop)."""
    counts = batch.counts[mask]
    starts = batch.offsets[:-1][mask]
    offsets = np.concatenate([[0], np.cumsum(counts)])
    rows = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])
    return ObjectBatch(batch.points[rows], offsets)


def classify_objects(batch: ObjectBatch, status: np.ndarray | None, k: int, vocab: EmbeddedVocabulary,
                     logits_of) -> Predictions:
    """Predictions of k labels per object: only OK objects with points reach `logits_of(sub_batch)`
    ((N, V) logits over vocab); the others keep their status with index -1, score NaN."""
    n = len(batch)
    counts = batch.counts
    out_status = (np.full(n, ObjectStatus.OK, dtype=np.int64) if status is None
                  else np.array(status, dtype=np.int64).reshape(-1))
    if len(out_status) != n:
        raise ValueError(f'status has {len(out_status)} entries for {n} objects')
    out_status[(out_status == ObjectStatus.OK) & (counts == 0)] = ObjectStatus.NO_POINTS
    indices = np.full((n, k), -1, dtype=np.int64)
    scores = np.full((n, k), np.nan, dtype=np.float32)
    run = out_status == ObjectStatus.OK
    if run.any():
        with torch.inference_mode():
            logits = logits_of(batch if run.all() else select_objects(batch, run))
            indices[run], scores[run] = top_k_probabilities(logits, k)
    return Predictions(indices, scores, counts.copy(), out_status, vocab.labels, vocab.version)


def top_k_probabilities(logits: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, V) logits -> the k most probable (indices int64, softmax probabilities float32)."""
    top = torch.softmax(logits.float(), dim=-1).topk(k, dim=-1)
    return top.indices.cpu().numpy().astype(np.int64), top.values.cpu().numpy().astype(np.float32)
