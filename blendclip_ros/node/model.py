"""The node's model: checkpoint + text space + vocabulary embeddings, loaded at configure, freed at cleanup.

The node and the offline labeller load it through `load_model` from the same parameters, so both label
with the same classifier.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .params import NodeParams


class LoadedModel:
    """Encoder + text space + vocabulary embeddings, as the node uses them (worker thread only).

    own_labels: an exported model's vocabulary (None for a checkpoint, which embeds any label): a new
    vocabulary must be among them, and keeps the artefact's prompt templates.
    """

    def __init__(self, classifier: Any, name: str, device: str, text_space: str,
                 model_format: str = 'checkpoint', own_labels: tuple[str, ...] | None = None) -> None:
        self.classifier = classifier
        self.name = name
        self.device = device
        self.text_space = text_space
        self.model_format = model_format
        self.own_labels = own_labels

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

    def vocabulary_reason(self, labels: Sequence[str]) -> str | None:
        """Why this model cannot label with `labels` (an exported model lacks their embeddings), or None."""
        if self.own_labels is None:
            return None
        try:
            exported_labels(self.name, self.own_labels, labels)
        except ValueError as exc:
            return str(exc)
        return None

    def build_vocabulary(self, labels, templates) -> Any:
        """The slow half of a vocabulary change (text embeddings, on the CPU), safe to run on another
        thread while frames are labelled: nothing the worker uses is touched."""
        if self.own_labels is not None:  # an exported model: its own labels and templates only
            labels, templates = exported_labels(self.name, self.own_labels, labels), self.templates
        return self.classifier.build_vocabulary(list(labels), list(templates), device='cpu')

    def use_vocabulary(self, vocab: Any) -> None:
        """The quick half, on the worker thread: copy to the device and swap (labels and embeddings
        together). The copy stays off other threads: a CUDA graph may be capturing on the worker."""
        self.classifier.use_vocabulary(vocab)

    def describe(self) -> str:
        return f'{self.model_format} model {self.name!r} on {self.device}, text space {self.text_space!r}'

    def release(self) -> None:
        self.classifier = None


def load_model(params: NodeParams) -> LoadedModel:
    """The model `checkpoint` names, through the loader of its format, on the chosen device (raises with a
    reason naming the file)."""
    if params.cpu_threads:
        import torch

        torch.set_num_threads(params.cpu_threads)
    path = model_path(params.checkpoint)
    fmt = model_format(path, params.model_format)
    classifier, own_labels = LOADERS[fmt](path, params)
    from blendclip_core.normalization import box_size_input

    config, box_size = classifier.encoder.config, box_size_input(classifier.encoder)
    point_channels = int(config.in_channels) - 3 * box_size
    if point_channels != 3:  # xyz from the cloud (+ the box l/w/h, which label_frame appends)
        raise ValueError(f'{path}: the encoder takes {config.in_channels} input channels '
                         f'({point_channels} per point); the node feeds xyz'
                         + (' and the box size' if box_size else ' only'))
    return LoadedModel(classifier, classifier.model_name, str(classifier.device), classifier.text_space_spec,
                       fmt, own_labels)


def model_path(checkpoint: str) -> Path:
    """The `checkpoint` parameter as a path ('' = the packaged default); FileNotFoundError if absent."""
    from blendclip_core.checkpoint import default_checkpoint_path

    path = Path(checkpoint).expanduser() if checkpoint else default_checkpoint_path()
    if not path:
        raise FileNotFoundError('no checkpoint given and no packaged default model found; set `checkpoint`')
    if not path.exists():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    return path


def model_format(path: Path, asked: str) -> str:
    """What `path` holds ('checkpoint' for a file, an export folder's own format), checked against `asked`
    ('auto' takes what it holds)."""
    if path.is_dir():
        from blendclip_core.export import read_manifest

        found = read_manifest(path).kind  # ArtefactError naming the file when damaged
    else:
        found = 'checkpoint'
    if asked not in ('auto', found):
        hint = '' if path.is_dir() else ' (an exported model is the folder blendclip-export wrote)'
        raise ValueError(f'model_format is {asked!r} but {path} holds a {found} model{hint}')
    return found


def _load_checkpoint(path: Path, params: NodeParams) -> tuple[Any, None]:
    """A checkpoint: any vocabulary, embedded in the card's (or the `text_space` parameter's) text space;
    the `classifier` parameter picks the point encoder, the depth views or both."""
    from blendclip_core.depth_views import load_classifier

    return load_classifier(
        path, list(params.vocabulary), list(params.prompt_templates), classifier=params.classifier,
        device=params.device, text_space=params.text_space or None, top_k=params.top_k,
        input_normalization=params.input_normalization or None), None


def _load_exported(path: Path, params: NodeParams) -> tuple[Any, tuple[str, ...]]:
    """An exported artefact: its card and its class embeddings (the vocabulary must be among its labels;
    the artefact's templates are the ones its embeddings were made with), and its labels."""
    from blendclip_core.export import ArtefactError, load_exported

    if params.classifier != 'points':
        raise ArtefactError(f'{path}: classifier={params.classifier!r} needs a checkpoint, not an export')
    classifier = load_exported(path, device=None if params.device == 'auto' else params.device,
                               top_k=params.top_k)
    if params.input_normalization not in ('', classifier.input_normalization):
        raise ArtefactError(f'{path}: input_normalization={params.input_normalization!r}, but the '
                            f"artefact's card records {classifier.input_normalization!r}; leave it empty")
    own = classifier.labels
    classifier.set_vocabulary(exported_labels(path, own, params.vocabulary))
    return classifier, own


def exported_labels(path: Path | str, available: tuple[str, ...], labels: Sequence[str]) -> list[str]:
    """`labels`, if the artefact holds class embeddings for all of them; else a ValueError saying why."""
    missing = [label for label in labels if label not in available]
    if missing:
        raise ValueError(f'{path}: an exported model labels only with its own vocabulary; it has no class '
                         f'embeddings for {missing} (it holds {list(available)}): choose among those, or '
                         f'export again with --vocabulary')
    return list(labels)


LOADERS = {'checkpoint': _load_checkpoint, 'aoti': _load_exported, 'onnx': _load_exported}


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
