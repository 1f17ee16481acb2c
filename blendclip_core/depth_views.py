"""Zero-shot labels without a point encoder: CLIP image embeddings of depth views (CLIP2Point).

Each object is rendered as depth maps from several views (blendclip_core.depth_render), the frozen
OpenCLIP image tower embeds every view, and the object's embedding is the normalised mean of its views.
It is compared with the vocabulary's text embeddings by the point classifier's own machinery
(`ZeroShotClassifier`: the same zero-shot head, cache, vocabulary swaps, statuses), so the node, the
offline labeller, evaluation and `predict` take it wherever they take a classifier. `CombinedClassifier`
is CLIP2Point's dual path: the mean of the point encoder's and the depth views' logits.

    load_classifier(checkpoint, labels, classifier='points' | 'depth_views' | 'both', ...)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from blendclip_core.classifier import (
    ClassifierError,
    EmbeddedVocabulary,
    ZeroShotClassifier,
    classify_objects,
)
from blendclip_core.depth_render import DepthRenderConfig, render_depth
from blendclip_core.text_space import TextSpace, create_text_space
from blendclip_core.types import ObjectBatch, Predictions
from blendclip_core.vocabulary import DRIVING

logger = logging.getLogger(__name__)

CLASSIFIERS = ('points', 'depth_views', 'both')
# The OpenCLIP model whose image tower renders are embedded by, unless an openclip text space is named.
DEFAULT_DEPTH_SPACE = 'openclip:ViT-B-16:datacomp_xl_s13b_b90k'
# CLIP2Point's prompts: the image tower sees depth maps, so the text says so.
DEPTH_TEMPLATES: tuple[str, ...] = (
    'point cloud depth map of a {}.',
    'a depth map of a {}.',
    'a grey depth image of a {}.',
)
IMAGES_PER_CALL = 256  # views through the image tower at once (bounds activation memory)
DEFAULT_RENDER = DepthRenderConfig()


@dataclass(frozen=True)
class DepthViewInputs:
    """What the depth-view encoder takes, in the fields the pipeline reads from a point encoder's config."""

    in_channels: int = 3  # xyz; columns after xyz are ignored
    box_size_input: bool = False  # no box l/w/h channels
    max_points: int = 8192  # per object, a uniform subset above it (the splats hardly change)


class DepthViewEncoder(torch.nn.Module):
    """Packed objects -> (B, D) mean of their views' CLIP image embeddings (the classifier's encoder).

    visual: an OpenCLIP image tower (`model.visual`), frozen; its input size and pixel mean/std are
    read from it.
    """

    config = DepthViewInputs()
    in_channels = config.in_channels

    def __init__(self, visual: torch.nn.Module, render: DepthRenderConfig = DEFAULT_RENDER) -> None:
        super().__init__()
        self.visual = visual.eval().requires_grad_(False)
        self.render = render
        size = visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        cfg = getattr(visual, 'preprocess_cfg', {})
        mean = cfg.get('mean', getattr(visual, 'image_mean', None) or (0.48145466, 0.4578275, 0.40821073))
        std = cfg.get('std', getattr(visual, 'image_std', None) or (0.26862954, 0.26130258, 0.27577711))
        self.register_buffer('pixel_mean', torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer('pixel_std', torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.embed_dim = int(getattr(visual, 'output_dim', 0)) or None

    def images(self, batch: ObjectBatch) -> torch.Tensor:
        """(B, V, S, S) depth images of the objects, on the encoder's device."""
        device = self.pixel_mean.device
        points = torch.from_numpy(batch.points[:, :3]).to(device)
        return render_depth(points, torch.from_numpy(batch.offsets).to(device), self.render, self.image_size)

    def encode(self, batch: ObjectBatch) -> torch.Tensor:
        depth = self.images(batch)
        n, n_views = depth.shape[:2]
        pixels = (depth.flatten(0, 1)[:, None].expand(-1, 3, -1, -1) - self.pixel_mean) / self.pixel_std
        views = torch.cat([self.visual(pixels[i:i + IMAGES_PER_CALL])
                           for i in range(0, len(pixels), IMAGES_PER_CALL)])
        views = torch.nn.functional.normalize(views.float(), dim=-1)
        return views.view(n, n_views, -1).mean(1)


class DepthViewClassifier(ZeroShotClassifier):
    """ZeroShotClassifier whose encoder is an OpenCLIP text space's own image tower on depth views.

    space: an OpenCLIP text space (its model is loaded here); templates default to DEPTH_TEMPLATES;
    logit_scale None: the CLIP model's own temperature. Other arguments as ZeroShotClassifier.
    """

    def __init__(self, space: TextSpace, labels: Sequence[str] = DRIVING,
                 templates: Sequence[str] = DEPTH_TEMPLATES, *, render: DepthRenderConfig = DEFAULT_RENDER,
                 device: str = 'auto', top_k: int = 5, logit_scale: float | None = None,
                 cache_dir: str | Path | None = None, precision: str = 'bf16') -> None:
        model = getattr(space, 'model', None)
        if model is None or not hasattr(model, 'visual'):
            raise ClassifierError(f'depth views need an OpenCLIP space with an image tower; {space.spec} has '
                                  f'none (use openclip:<model>:<weights>, e.g. {DEFAULT_DEPTH_SPACE})')
        scale = logit_scale if logit_scale is not None else float(model.logit_scale.exp().clamp(max=100))
        super().__init__(DepthViewEncoder(model.visual, render), space, labels, templates or DEPTH_TEMPLATES,
                         device=device, top_k=top_k, logit_scale=scale, cache_dir=cache_dir,
                         model_name=f'depth-views:{space.spec}', precision=precision,
                         input_normalization='metric', input_cap='uniform')


class CombinedClassifier:
    """CLIP2Point's dual path: per object the mean of the point classifier's and the depth-view
    classifier's logits over one vocabulary (each path keeps its own text space and temperature)."""

    def __init__(self, points: ZeroShotClassifier, depth: ZeroShotClassifier) -> None:
        if tuple(points.labels) != tuple(depth.labels):
            raise ClassifierError('the two paths of a combined classifier need one vocabulary')
        self.paths = (points, depth)
        self._vocab = (points.vocabulary, depth.vocabulary)

    encoder = property(lambda self: self.paths[0].encoder)  # label_frame crops for the point encoder
    input_cap = property(lambda self: self.paths[0].input_cap)
    device = property(lambda self: self.paths[0].device)
    top_k = property(lambda self: self.paths[0].top_k)
    model_name = property(lambda self: f'{self.paths[0].model_name}+{self.paths[1].model_name}')
    text_space_spec = property(lambda self: '+'.join(p.text_space_spec for p in self.paths))
    vocabulary = property(lambda self: self._vocab[0])
    labels = property(lambda self: self._vocab[0].labels)
    templates = property(lambda self: self._vocab[0].templates)
    vocabulary_version = property(lambda self: '+'.join(v.version for v in self._vocab))

    def set_vocabulary(self, labels: Sequence[str], templates: Sequence[str] | None = None):
        return self.use_vocabulary(self.build_vocabulary(labels, templates))

    def build_vocabulary(self, labels: Sequence[str], templates: Sequence[str] | None = None,
                         device: str | torch.device | None = None) -> tuple[EmbeddedVocabulary, ...]:
        """Both paths' embeddings of one vocabulary (the depth path keeps its own templates when None)."""
        return tuple(p.build_vocabulary(labels, templates, device) for p in self.paths)

    def use_vocabulary(self, vocab: tuple[EmbeddedVocabulary, ...]) -> tuple[EmbeddedVocabulary, ...]:
        self._vocab = tuple(p.use_vocabulary(v) for p, v in zip(self.paths, vocab))  # one assignment
        return self._vocab

    def classify(self, batch: ObjectBatch, status: np.ndarray | None = None,
                 top_k: int | None = None) -> Predictions:
        vocab = self._vocab
        k = min(int(top_k or self.top_k), len(vocab[0].labels))
        return classify_objects(batch, status, k, vocab[0], lambda sub: self.vocabulary_logits(sub, vocab))

    def vocabulary_logits(self, batch: ObjectBatch, vocab: tuple[EmbeddedVocabulary, ...]) -> torch.Tensor:
        device = self.paths[0].device
        return sum(p.vocabulary_logits(batch, v).to(device) for p, v in zip(self.paths, vocab)) / 2


def load_classifier(checkpoint: str | Path | None = None, labels: Sequence[str] | None = None,
                    templates: Sequence[str] | None = None, *, classifier: str = 'points',
                    device: str = 'auto', text_space: str | None = None, top_k: int = 5,
                    cache_dir: str | Path | None = None, input_normalization: str | None = None,
                    depth_space: str | None = None):
    """The classifier kind asked for: 'points' (the checkpoint's encoder), 'depth_views' (no
    checkpoint: OpenCLIP on depth views) or 'both' (their mean logits).

    text_space: the point path's space (None: the checkpoint card's). depth_space: the depth path's
    OpenCLIP model; None: the first OpenCLIP spec of text_space and the card's (a model trained into
    CLIP's space shares it), else DEFAULT_DEPTH_SPACE. templates None or empty: each path's default.
    input_normalization: as ZeroShotClassifier.from_checkpoint.
    """
    if classifier not in CLASSIFIERS:
        raise ClassifierError(f'classifier must be one of {CLASSIFIERS}, got {classifier!r}')
    points = depth = None
    if classifier != 'depth_views':  # a checkpoint file, or an exported folder (its own labels by default)
        from blendclip_core.export import load_point_classifier

        points = load_point_classifier(checkpoint, labels or None, templates, device=device, top_k=top_k,
                                       text_space=text_space, cache_dir=cache_dir,
                                       input_normalization=input_normalization)
    labels = list(points.labels) if points is not None else list(labels or DRIVING)
    if classifier != 'points':
        named = [depth_space or '', text_space or '', points.text_space_spec if points is not None else '']
        spec = next((s for s in named if s.startswith('openclip:')), DEFAULT_DEPTH_SPACE)
        shared = points is not None and points.text_space_spec == spec and hasattr(points.text_space, 'model')
        space = points.text_space if shared else create_text_space(spec, 'cpu')  # one CLIP model in memory
        depth = DepthViewClassifier(space, labels, templates,
                                    device=device, top_k=top_k, cache_dir=cache_dir)
    if points is not None and depth is not None:
        return CombinedClassifier(points, depth)
    return points or depth
