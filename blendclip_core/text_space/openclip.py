"""The frozen CLIP teacher, reached only through OpenCLIP's public API (the one place that does).

`pretrained` is an OpenCLIP tag (needs the hub or its local cache) or a local weights file. Without
weights (`pretrained=None`) the model is randomly initialised with a fixed seed, which is what tests
and shape checks use: reproducible, so its embeddings may be cached like any others.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from blendclip_core.text_space.base import (
    TextSpace,
    TextSpaceError,
    TextSpaceUnavailableError,
    check_texts,
    normalise,
    resolve_device,
)

logger = logging.getLogger(__name__)

RANDOM_INIT_SEED = 0
WEIGHT_SUFFIXES = ('.safetensors', '.bin', '.pt', '.pth', '.ckpt')
_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def looks_like_path(pretrained: str) -> bool:
    """OpenCLIP tags are plain identifiers; anything with a separator or weight suffix is a file."""
    return ('/' in pretrained or os.sep in pretrained or pretrained.endswith(WEIGHT_SUFFIXES)
            or Path(pretrained).expanduser().is_file())


def file_sha256(path: str | Path) -> str:
    """Hex digest of a weights file, memoised by (path, size, mtime): big files hash once."""
    path = Path(path).expanduser().resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        digest = hashlib.sha256()
        with path.open('rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                digest.update(block)
        _FILE_HASHES[key] = digest.hexdigest()
    return _FILE_HASHES[key]


class OpenClipSpace(TextSpace):
    """An OpenCLIP model (frozen, eval) as a text space; also embeds images (used by mining)."""

    def __init__(self, model_name: str, pretrained: str | None = None, device: str = 'cpu',
                 batch_size: int = 256) -> None:
        self.model_name = model_name
        self.pretrained = pretrained or None
        self.device = device
        self.batch_size = batch_size
        self.loads = 0
        self._model = None
        self._tokenizer = None
        self._preprocess = None
        self._dim: int | None = None

    @property
    def spec(self) -> str:
        return f'openclip:{self.model_name}:{self.pretrained or "none"}'

    @property
    def weights_id(self) -> str:
        if self.pretrained is None:
            return f'random-init:seed{RANDOM_INIT_SEED}'
        if looks_like_path(self.pretrained):
            path = Path(self.pretrained).expanduser()
            if not path.is_file():
                raise TextSpaceUnavailableError(self._missing_file_message())
            return f'sha256:{file_sha256(path)[:16]}'
        return f'tag:{self.pretrained}'

    @property
    def dim(self) -> int:
        if self._dim is None:
            import open_clip

            config = open_clip.get_model_config(self.model_name)
            if config and 'embed_dim' in config:
                self._dim = int(config['embed_dim'])
            else:  # e.g. hf-hub models: only the loaded model knows
                self._dim = int(self.embed_texts(['x']).shape[1])
        return self._dim

    @property
    def model(self):
        self.load()
        return self._model

    def load(self) -> OpenClipSpace:
        """Build the model (once). Raises TextSpaceUnavailableError when the weights are not here."""
        if self._model is not None:
            return self
        import open_clip

        if open_clip.get_model_config(self.model_name) is None and not self.model_name.startswith('hf-hub:'):
            raise TextSpaceError(f'unknown OpenCLIP model {self.model_name!r}; open_clip.list_models() '
                                 'lists the known ones (open_clip.add_model_config adds your own)')
        pretrained = self.pretrained
        if pretrained is not None and looks_like_path(pretrained):
            path = Path(pretrained).expanduser()
            if not path.is_file():
                raise TextSpaceUnavailableError(self._missing_file_message())
            pretrained = str(path)
        device = resolve_device(self.device)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_INIT_SEED)
                model, _, preprocess = open_clip.create_model_and_transforms(
                    self.model_name, pretrained=pretrained, device=device)
        except RuntimeError as err:
            if pretrained is not None and not looks_like_path(pretrained):
                raise TextSpaceUnavailableError(self._missing_tag_message(err)) from err
            raise TextSpaceError(f'cannot build OpenCLIP {self.model_name!r} with weights '
                                 f'{pretrained!r}: {err}') from err
        model.eval().requires_grad_(False)
        self._model, self._preprocess = model, preprocess
        self._tokenizer = open_clip.get_tokenizer(self.model_name)
        self._device = device
        self.loads += 1
        logger.info('loaded OpenCLIP %s (weights %s) on %s', self.model_name, pretrained or 'random init',
                    device)
        return self

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        texts = check_texts(texts)
        if not texts:
            return torch.zeros(0, self.dim)
        self.load()
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                tokens = self._tokenizer(texts[i:i + self.batch_size]).to(self._device)
                out.append(normalise(self._model.encode_text(tokens)))
        emb = torch.cat(out)
        self._dim = emb.shape[1]
        return emb

    def embed_images(self, images: Sequence) -> torch.Tensor:
        """PIL images or encoded image bytes (PNG/JPEG) -> (N, dim) normalised CPU embeddings."""
        from PIL import Image

        self.load()
        out = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                batch = [self._preprocess(_as_rgb(im, Image)) for im in images[i:i + self.batch_size]]
                pixels = torch.stack(batch).to(self._device)
                out.append(normalise(self._model.encode_image(pixels)))
        return torch.cat(out) if out else torch.zeros(0, self.dim)

    def _missing_tag_message(self, err: Exception) -> str:
        return (f"OpenCLIP weights '{self.pretrained}' for model '{self.model_name}' are not available "
                f'here (offline, or not in the local hub cache): {err}. Download them once on a machine '
                'with network access and point at the file instead: '
                f"pretrained=/path/open_clip_model.safetensors, i.e. text space "
                f"'openclip:{self.model_name}:/path/open_clip_model.safetensors'.")

    def _missing_file_message(self) -> str:
        return (f"OpenCLIP weights file '{self.pretrained}' for model '{self.model_name}' does not exist; "
                'give the path of a downloaded open_clip_model.safetensors (or open_clip_pytorch_model.bin).')


def _as_rgb(image, pil_image_module):
    if isinstance(image, (bytes, bytearray, memoryview)):
        try:
            image = pil_image_module.open(io.BytesIO(bytes(image)))
            image.load()
        except Exception as err:  # PIL raises several types for corrupt data
            raise ValueError(f'cannot decode image bytes: {err}') from err
    if not isinstance(image, pil_image_module.Image):
        raise TypeError(f'expected a PIL image or encoded bytes, got {type(image).__name__}')
    return image.convert('RGB')
