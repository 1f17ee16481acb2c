"""Captions for mined objects: a deterministic template captioner, a local VLM, or the user's own.

A captioner maps a batch of `CaptionInput`s to one caption each. The template captioner needs nothing
but the annotation, so mining is reproducible and runs anywhere; the VLM captioner (the method used
Gemma-3-4b-it on the crop, prompt 'A photo of') reads a model directory the user has, and falls back to
the template for objects without a crop. A user's captioner is named `module:factory` or registered in
the `blendclip.captioners` entry-point group; the factory, called with no arguments, returns it.
A captioner that raises or returns the wrong number of captions fails its scene (`CaptionFailure`):
the scene is not marked done, so a rerun retries it.
"""

from __future__ import annotations

import importlib
import io
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from blendclip_core.mining.categories import noun

logger = logging.getLogger(__name__)


class CaptionerError(RuntimeError):
    """A captioner that cannot be built (unknown spec, missing model directory or library)."""


class CaptionFailure(RuntimeError):
    """A captioner that failed on a batch: its scene is left undone (no marker), so a rerun retries it."""


ENTRY_POINT_GROUP = 'blendclip.captioners'  # name = a factory returning a captioner
PLUGIN_SPEC = re.compile(r'^[A-Za-z_][\w.]*:[A-Za-z_]\w*$')  # module.path:factory


@dataclass(frozen=True)
class CaptionInput:
    category: str  # fine dataset category, e.g. 'vehicle.car'
    attributes: tuple[str, ...] = ()  # dataset attribute names, e.g. ('vehicle.parked',)
    size_lwh: tuple[float, float, float] = (0.0, 0.0, 0.0)  # metres
    image: bytes | None = None  # JPEG crop, if any


# attribute -> (adjective before the noun, phrase after it)
ATTRIBUTE_WORDS = {
    'vehicle.moving': ('moving', ''),
    'vehicle.parked': ('parked', ''),
    'vehicle.stopped': ('stopped', ''),
    'vehicle_state.driving': ('moving', ''),
    'vehicle_state.parked': ('parked', ''),
    'vehicle_state.stopped': ('stopped', ''),
    'pedestrian.moving': ('walking', ''),
    'pedestrian.standing': ('standing', ''),
    'pedestrian.sitting_lying_down': ('sitting or lying', ''),
    'cycle.with_rider': ('', 'with a rider'),
    'cycle.without_rider': ('', 'without a rider'),
}


class TemplateCaptioner:
    """'a parked car, about 4.5 m long'; 'a walking pedestrian, about 1.8 m tall'."""

    name = 'template'

    def caption_one(self, obj: CaptionInput) -> str:
        before, after = [], []
        for attr in obj.attributes:
            adj, phrase = ATTRIBUTE_WORDS.get(attr, ('', ''))
            if adj:
                before.append(adj)
            if phrase:
                after.append(phrase)
        words = ' '.join(before + [noun(obj.category)])
        article = 'an' if words[:1] in 'aeiou' else 'a'
        text = f'{article} {words}' + ''.join(f' {p}' for p in after)
        length, _, height = obj.size_lwh
        if length > 0 and height > 0:
            text += f', about {height:.1f} m tall' if height > length else f', about {length:.1f} m long'
        return text

    def __call__(self, objects: Sequence[CaptionInput]) -> list[str]:
        return [self.caption_one(o) for o in objects]


@dataclass(frozen=True)
class VLMConfig:
    model_dir: str  # a local transformers model directory (e.g. a Gemma-3 or BLIP-2 checkpoint)
    prompt: str = 'A photo of'  # the method's prompt; the caption continues it
    max_new_tokens: int = 40  # CLIP's text encoder sees at most 77 tokens
    device: str = 'auto'  # 'auto' = cuda when available


class VLMCaptioner:
    """Captions crops with a local image-text-to-text model; objects without a crop get the template."""

    name = 'vlm'

    def __init__(self, config: VLMConfig, processor=None, model=None):
        self.config = config
        self.processor = processor
        self.model = model
        self.fallback = TemplateCaptioner()

    @staticmethod
    def check(config: VLMConfig) -> None:
        """Cheap validation (no model load), so a parent process can fail early without touching CUDA."""
        path = Path(config.model_dir)
        if not path.is_dir():
            raise CaptionerError(f'VLM captioner: model directory {path} does not exist (download a '
                                 f'model such as a Gemma-3 or BLIP-2 checkpoint there, or use the template '
                                 f'captioner)')

    @classmethod
    def load(cls, config: VLMConfig) -> VLMCaptioner:
        cls.check(config)
        path = Path(config.model_dir)
        try:
            import torch
            from transformers import AutoModelForImageTextToText, AutoProcessor
        except ImportError as exc:  # pragma: no cover - transformers is in the environment
            raise CaptionerError(f'VLM captioner needs transformers: {exc}') from exc
        device = config.device
        if device == 'auto':
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        tokenizer = getattr(processor, 'tokenizer', None)
        if tokenizer is not None:  # decoder-only models (Gemma-3) continue the prompt: pad on the left
            tokenizer.padding_side = 'left'
        dtype = torch.bfloat16 if device.startswith('cuda') else torch.float32
        model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True, dtype=dtype)
        return cls(config, processor, model.to(device).eval())

    def _inputs(self, images: list):
        """Chat models (Gemma-3: a chat template placing the image token) get one user turn holding the
        crop and the prompt; others (BLIP-2) get the prompt as text beside the image."""
        if getattr(self.processor, 'chat_template', None):
            turns = [[{'role': 'user', 'content': [{'type': 'image', 'image': im},
                                                   {'type': 'text', 'text': self.config.prompt}]}]
                     for im in images]
            return self.processor.apply_chat_template(turns, add_generation_prompt=True, tokenize=True,
                                                      return_dict=True, return_tensors='pt',
                                                      processor_kwargs={'padding': True})
        return self.processor(images=images, text=[self.config.prompt] * len(images), return_tensors='pt',
                              padding=True)

    def __call__(self, objects: Sequence[CaptionInput]) -> list[str]:
        import torch
        from PIL import Image

        out = self.fallback(objects)
        with_image = [i for i, o in enumerate(objects) if o.image]
        if not with_image:
            return out
        images = [Image.open(io.BytesIO(objects[i].image)).convert('RGB') for i in with_image]
        inputs = self._inputs(images).to(self.model.device)
        with torch.inference_mode():
            ids = self.model.generate(**inputs, max_new_tokens=self.config.max_new_tokens, do_sample=False)
        texts = self.processor.batch_decode(ids[:, inputs['input_ids'].shape[1]:], skip_special_tokens=True)
        for i, text in zip(with_image, texts):
            text = ' '.join(text.split())
            out[i] = f'{self.config.prompt} {text}'.strip() if text else out[i]
        return out


def _plugin_factory(spec: str):
    """The factory a user's spec names: `module:factory` or an entry point of ENTRY_POINT_GROUP."""
    if PLUGIN_SPEC.match(spec):
        module, name = spec.split(':')
        try:
            factory = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise CaptionerError(f'captioner {spec!r}: cannot import {name} from {module}: {exc}') from exc
        return factory
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == spec:
            return ep.load()
    raise CaptionerError(f"unknown captioner {spec!r}; use 'template', 'vlm:/path/to/model_dir', "
                         f"'module:factory' or a name registered in the {ENTRY_POINT_GROUP!r} entry points")


def check_captioner(spec: str) -> None:
    """Raise CaptionerError now for a spec that `create_captioner` could not build (loads no model)."""
    if spec == 'template':
        return
    if spec.startswith('vlm:'):
        VLMCaptioner.check(VLMConfig(model_dir=spec[4:]))
        return
    if not callable(_plugin_factory(spec)):
        raise CaptionerError(f'captioner {spec!r} is not callable')


def create_captioner(spec: str = 'template'):
    """'template', 'vlm:/path/to/model_dir', 'module:factory' or an entry-point name."""
    if spec == 'template':
        return TemplateCaptioner()
    if spec.startswith('vlm:'):
        return VLMCaptioner.load(VLMConfig(model_dir=spec[4:]))
    check_captioner(spec)
    return _plugin_factory(spec)()


def caption_batch(captioner, objects: Sequence[CaptionInput]) -> list[str]:
    """The captioner's captions for `objects`; any error of the captioner becomes a CaptionFailure."""
    try:
        captions = list(captioner(objects))
    except Exception as exc:
        raise CaptionFailure(f'captioner {getattr(captioner, "name", type(captioner).__name__)} failed: '
                             f'{type(exc).__name__}: {exc}') from exc
    if len(captions) != len(objects) or not all(isinstance(c, str) for c in captions):
        raise CaptionFailure(f'captioner returned {len(captions)} captions for {len(objects)} objects '
                             f'(need one string each)')
    return captions
