"""Proxy triplets from unlabelled scans (CLIP2): 2D open-vocabulary detections lifted into the LiDAR.

A `Detector2D` finds objects in a frame's camera images (an OWL-ViT / OWLv2 / Grounding DINO model
directory the user has, boxes given in a JSON file, or the user's own `module:factory`). Each detection's
frustum cuts the frame's aggregated sweeps (ego-motion compensated by the reader); the ground is removed
with a per-cell height map of the whole scan; the points of a cut wider than the 2D box are clustered,
clusters larger than the detector text's class allows are split, and the candidate whose projection
agrees best with the 2D box is the object; a bird's-eye rectangle fitted to its points inside the box
(with z from their extent), grown away from the camera to the class's mean sides, is the proxy box.
Score, point-count and size filters drop what is implausible, and boxes found in two cameras are merged
(bird's-eye NMS). Annotations of the dataset are never read.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blendclip_core.datasets.frame import Camera, Frame

logger = logging.getLogger(__name__)


class DetectorError(RuntimeError):
    """A detector that cannot be built (unknown spec, missing file or model directory)."""


@dataclass(frozen=True)
class Detection2D:
    box: tuple[float, float, float, float]  # u0, v0, u1, v1 in pixels of the camera image
    label: str  # the vocabulary text the detector matched
    score: float  # detector confidence in [0, 1]


@dataclass(frozen=True)
class ProxyConfig:
    """How detections are lifted; recorded with the mining settings."""

    min_score: float = 0.3  # detections below are ignored
    inset: float = 0.1  # fraction of the 2D box cut from each side (box edges bleed into the background)
    max_depth: float = 80.0  # metres along the camera axis
    ground_cell: float = 2.0  # metres, cell of the ground height map
    ground_clearance: float = 0.25  # points less than this above the local ground are ground
    cluster_radius: float = 0.6  # metres, points closer than this are one object
    context: float = 0.5  # fraction of the 2D box added on each side for the clustering cut
    split_sigmas: float = 2.0  # a cluster longer or wider than the class mean + this many spreads is split
    min_points: int = 5  # proxies with fewer points (all sweeps) are dropped
    max_size: tuple[float, float, float] = (20.0, 5.0, 5.0)  # length, width, height limits in metres
    nms_iou: float = 0.3  # bird's-eye IoU above which two proxies (two cameras) are one object


@dataclass(frozen=True)
class ProxyBox:
    center: np.ndarray  # (3,) in the frame's reference
    size_lwh: np.ndarray  # (3,)
    yaw: float  # heading of the length axis about z
    detection: Detection2D
    camera: str
    num_points: int

    @property
    def rotation(self) -> np.ndarray:
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class GivenBoxes:
    """A detector that returns boxes it was given: {(frame token, camera channel): [Detection2D]}.
    Lifting is measured with it (ground-truth 2D boxes) without any detector weights."""

    name = 'given'

    def __init__(self, boxes: Mapping[tuple[str, str], Sequence[Detection2D]]):
        self.boxes = {k: list(v) for k, v in boxes.items()}

    @classmethod
    def from_json(cls, path: str | Path) -> GivenBoxes:
        """{sample token: {channel: [{box: [u0, v0, u1, v1], label, score}]}}"""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise DetectorError(f'given boxes {path}: {exc}') from exc
        return cls({(token, chan): [Detection2D(tuple(map(float, d['box'])), str(d['label']),
                                                float(d.get('score', 1.0))) for d in dets]
                    for token, cams in data.items() for chan, dets in cams.items()})

    def __call__(self, frame: Frame, camera: Camera) -> list[Detection2D]:
        return self.boxes.get((frame.token, camera.channel), [])


class TransformersDetector:
    """An open-vocabulary detector from a local transformers model directory (OWL-ViT, OWLv2, Grounding
    DINO: AutoModelForZeroShotObjectDetection), queried with the vocabulary; labels are vocabulary texts.
    Boxes are clipped to the image (the models' boxes may reach past its edges, the lifting and the crop need
    pixels of the image); those left empty are dropped."""

    name = 'transformers'

    def __init__(self, model_dir: str, vocabulary: Sequence[str], threshold: float = 0.1):
        self.model_dir, self.vocabulary, self.threshold = model_dir, list(vocabulary), threshold
        self.processor = self.model = None

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        device = 'cuda' if torch.cuda.is_available() else 'cpu'
        self.processor = AutoProcessor.from_pretrained(self.model_dir, local_files_only=True)
        model = AutoModelForZeroShotObjectDetection.from_pretrained(self.model_dir, local_files_only=True)
        self.model = model.to(device).eval()

    def __call__(self, frame: Frame, camera: Camera) -> list[Detection2D]:
        import torch
        from PIL import Image

        if self.model is None:
            self._load()
        with Image.open(camera.path) as im:
            image = im.convert('RGB')
        # Grounding DINO's processor joins the texts into its prompt 'car. traffic cone.'
        inputs = self.processor(text=[self.vocabulary], images=image, return_tensors='pt')
        inputs = inputs.to(self.model.device)
        with torch.inference_mode():
            outputs = self.model(**inputs)
        width, height = image.size
        if getattr(outputs, 'input_ids', None) is None:  # OWL-ViT, OWLv2: a logit per vocabulary text
            # the processor knows the image's frame (OWLv2 pads it to a square)
            result = self.processor.post_process_grounded_object_detection(
                outputs, threshold=self.threshold, target_sizes=[(height, width)])[0]
            boxes, scores, labels = result['boxes'], result['scores'], result['labels']
        else:
            boxes, scores, labels = self._grounded(outputs, width, height)
        boxes = boxes.clamp(min=0).minimum(boxes.new_tensor([width, height] * 2))
        return [Detection2D(tuple(box), self.vocabulary[label], float(score))
                for box, label, score in zip(boxes.tolist(), labels.tolist(), scores.tolist())
                if box[2] > box[0] and box[3] > box[1]]

    def _grounded(self, outputs, width: int, height: int):
        """Boxes, scores and vocabulary indices of a Grounding DINO output, whose logits score the prompt's
        tokens: a text scores as its best token, a box is labelled with its best text (the processor's own
        post-processing labels a box with the words of every token above a threshold, often several texts)."""
        import torch
        from transformers.image_transforms import center_to_corners_format

        probs = outputs.logits[0].sigmoid()  # (queries, max_text_len)
        ids = outputs.input_ids[0, :probs.shape[-1]]  # the model reads at most max_text_len tokens
        tokenizer = self.processor.tokenizer
        dot = ids == tokenizer.convert_tokens_to_ids('.')
        text = torch.where(dot | (ids == tokenizer.cls_token_id) | (ids == tokenizer.sep_token_id), -1,
                           dot.cumsum(0))  # the index of the text each token belongs to; -1: none
        in_text = text == torch.arange(len(self.vocabulary), device=ids.device)[:, None]  # (texts, tokens)
        scores, labels = (probs[:, None, :len(ids)] * in_text).amax(-1).max(-1)
        boxes = center_to_corners_format(outputs.pred_boxes[0]) * probs.new_tensor([width, height] * 2)
        keep = scores > self.threshold
        return boxes[keep], scores[keep], labels[keep]


def create_detector(spec: str, vocabulary: Sequence[str] = ()):
    """'given:/path/boxes.json', 'hf:/path/to/model_dir' (OWL-ViT, OWLv2, Grounding DINO) or
    'module:factory' (called with the vocabulary, returns a callable (frame, camera) -> [Detection2D])."""
    kind, _, rest = spec.partition(':')
    if kind == 'given':
        return GivenBoxes.from_json(rest)
    if kind == 'hf':
        if not Path(rest).is_dir():
            raise DetectorError(f'detector model directory {rest} does not exist')
        return TransformersDetector(rest, vocabulary)
    if rest and kind.replace('.', '_').isidentifier() and rest.isidentifier():
        try:
            return getattr(importlib.import_module(kind), rest)(list(vocabulary))
        except (ImportError, AttributeError) as exc:
            raise DetectorError(f'detector {spec!r}: {exc}') from exc
    raise DetectorError(f"unknown detector {spec!r}; use 'given:boxes.json', 'hf:/model_dir' or "
                        f"'module:factory'")
