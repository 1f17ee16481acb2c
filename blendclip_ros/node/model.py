"""The node's model: checkpoint + text space + vocabulary embeddings, loaded at configure, freed at cleanup.

The node and the offline labeller load it through `load_model` from the same parameters, so both label
with the same classifier.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import Any

from .params import NodeParams


class LoadedModel:
    """Encoder + text space + vocabulary embeddings, as the node uses them (worker thread only)."""

    def __init__(self, classifier: Any, name: str, device: str, text_space: str) -> None:
        self.classifier = classifier
        self.name = name
        self.device = device
        self.text_space = text_space

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.classifier.labels)

    @property
    def templates(self) -> tuple[str, ...]:
        return tuple(self.classifier.templates)

    @property
    def vocabulary_version(self) -> str:
        return str(self.classifier.vocabulary_version)

    def set_vocabulary(self, labels, templates) -> None:
        self.classifier.set_vocabulary(list(labels), list(templates))

    def build_vocabulary(self, labels, templates) -> Any:
        """The slow half of a vocabulary change (text embeddings, on the CPU), safe to run on another
        thread while frames are labelled: nothing the worker uses is touched."""
        return self.classifier.build_vocabulary(list(labels), list(templates), device='cpu')

    def use_vocabulary(self, vocab: Any) -> None:
        """The quick half, on the worker thread: copy to the device and swap (labels and embeddings
        together). The copy stays off other threads: a CUDA graph may be capturing on the worker."""
        self.classifier.use_vocabulary(vocab)

    def describe(self) -> str:
        return f'model {self.name!r} on {self.device}, text space {self.text_space!r}'

    def release(self) -> None:
        self.classifier = None


def load_model(params: NodeParams) -> LoadedModel:
    """Checkpoint + text space + vocabulary embeddings on the chosen device (raises with a reason)."""
    if params.checkpoint and not Path(params.checkpoint).expanduser().is_file():
        raise FileNotFoundError(f'checkpoint not found: {params.checkpoint}')
    from blendclip_core.checkpoint import default_checkpoint_path
    from blendclip_core.classifier import ZeroShotClassifier

    if params.cpu_threads:
        import torch

        torch.set_num_threads(params.cpu_threads)
    path = Path(params.checkpoint).expanduser() if params.checkpoint else default_checkpoint_path()
    if not path:
        raise FileNotFoundError('no checkpoint given and no packaged default model found; set `checkpoint`')
    classifier = ZeroShotClassifier.from_checkpoint(
        path, list(params.vocabulary), list(params.prompt_templates), device=params.device,
        text_space=params.text_space or None, top_k=params.top_k)
    channels = int(getattr(classifier.encoder, 'in_channels', 3))
    if channels != 3:
        raise ValueError(f'{path}: the encoder takes {channels} input channels; the node feeds xyz only')
    return LoadedModel(classifier, classifier.model_name, str(classifier.device), classifier.text_space_spec)


def freeze_long_lived() -> None:
    """After loading: leave the model out of every garbage collection.

    The model and its libraries are hundreds of thousands of long-lived objects: a full collection that
    walks them all took ~360 ms (about once per 400 frames here, dropping frames). Frozen, they are left
    out of every collection; `release_memory` unfreezes them.
    """
    gc.collect()
    gc.freeze()


def release_memory() -> None:
    """After dropping the model: collect it, and give cached CUDA memory back (no-op without CUDA)."""
    gc.unfreeze()
    gc.collect()
    torch = sys.modules.get('torch')
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
