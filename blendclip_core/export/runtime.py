"""Running an exported artefact: `load_exported(dir)` -> a ZeroShotClassifier over an ExportedEncoder.

ExportedEncoder is the encoder's host side (blendclip_core.encoder.runner.PackedRunner: checks, zero
rows, the FPS cap, the plan and the grouping pre-step, pure torch on the CPU, Triton on CUDA) around
the exported network instead of PointEncoder's modules, so it has the same `encode(ObjectBatch)` and
the classifier, `label_frame` and the node take it as they take a PointEncoder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from blendclip_core.classifier import ZeroShotClassifier
from blendclip_core.encoder import EncoderConfig
from blendclip_core.encoder.packing import DevicePlan
from blendclip_core.encoder.runner import PackedRunner, PatchInputs, Staging
from blendclip_core.export.artefact import Artefact, ArtefactError, check_model_metadata, read_manifest
from blendclip_core.text_space import create_text_space
from blendclip_core.text_space.base import resolve_device

log = logging.getLogger(__name__)
Program = Callable[[PatchInputs], torch.Tensor]


class ExportedEncoder(PackedRunner):
    """An exported network with the encoder's `encode` / `encode_packed` (inference only)."""

    def __init__(self, config: EncoderConfig, program: Program, device: torch.device, kind: str) -> None:
        self.config = config
        self.grouping_backend = 'auto'
        self.kind = kind
        self.training = False
        self._program = program
        self._device = device
        self._staging = Staging()

    @property
    def device(self) -> torch.device:
        return self._device

    def to(self, device: str | torch.device) -> ExportedEncoder:
        """Itself, if `device` is the one it was loaded for (an exported program cannot move)."""
        device = torch.device(device)
        if device.type != self._device.type:
            raise ArtefactError(f'this {self.kind} encoder was loaded for {self._device}, not {device}; '
                                f'load the artefact with device={str(device)!r}')
        return self

    def eval(self) -> ExportedEncoder:
        return self

    def _embed_plan(self, inputs: PatchInputs, dp: DevicePlan) -> torch.Tensor:
        return self._program(inputs)


def _aoti_program(art: Artefact, device: torch.device) -> tuple[Program, dict[str, str]]:
    compiled_for = art.manifest['model']['device']
    if compiled_for != device.type:
        raise ArtefactError(f'{art.model_path}: compiled for {compiled_for}, not {device.type}; export again '
                            f'with --device {device.type}')
    runner = torch._inductor.aoti_load_package(str(art.model_path))

    def run(inputs: PatchInputs) -> torch.Tensor:
        return runner(*inputs.tensors())

    return run, dict(runner.get_metadata())


def _onnx_program(art: Artefact, device: torch.device) -> tuple[Program, dict[str, str]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # as many as torch uses beside it
    providers = ['CPUExecutionProvider']
    if device.type == 'cuda':
        providers.insert(0, ('CUDAExecutionProvider', {'device_id': device.index or 0}))
    try:
        session = ort.InferenceSession(str(art.model_path), options, providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types
        raise ArtefactError(f'{art.model_path}: ONNX Runtime cannot load it ({e})') from e
    if device.type == 'cuda' and 'CUDAExecutionProvider' not in session.get_providers():
        log.warning('%s: the CUDA provider is not available here; ONNX Runtime runs on the CPU',
                    art.model_path)
    names = PatchInputs.names()

    def run(inputs: PatchInputs) -> torch.Tensor:
        feeds = {n: t.detach().cpu().numpy() for n, t in zip(names, inputs.tensors())}
        return torch.from_numpy(session.run(None, feeds)[0]).to(device)

    return run, dict(session.get_modelmeta().custom_metadata_map)


LOADERS = {'aoti': _aoti_program, 'onnx': _onnx_program}


def load_encoder(art: Artefact, device: str | torch.device = 'cpu') -> ExportedEncoder:
    """The artefact's exported network, checked against its card."""
    device = resolve_device(device)
    kind = art.kind
    if kind not in LOADERS:
        raise ArtefactError(f'{art.root}: unknown model format {kind!r}; known: {sorted(LOADERS)}')
    program, metadata = LOADERS[kind](art, device)
    check_model_metadata(art, metadata)
    config = EncoderConfig.from_dict(art.card.architecture)
    return ExportedEncoder(config, program, device, kind)


def load_exported(path: str | Path, labels: Sequence[str] | None = None, *, device: str | None = None,
                  top_k: int = 5) -> ZeroShotClassifier:
    """A classifier over an exported artefact folder, with the classifier's `encode`/`classify` surface.

    labels: None for the artefact's whole vocabulary, else a subset of it (the artefact holds class
    embeddings only for its own labels; export again with --vocabulary for others). device: None for
    the one it was exported for (aoti) or the CPU (onnx). Damaged or mismatched parts: ArtefactError.
    """
    art = read_manifest(path)
    encoder = load_encoder(art, device or art.manifest['model']['device'])
    space = create_text_space(f'file:{art.vocabulary_path}')
    labels = list(labels) if labels else art.labels
    unknown = sorted(set(labels) - set(art.labels))
    if unknown:
        raise ArtefactError(f'{art.root}: no class embeddings for {unknown}; its vocabulary is {art.labels}')
    card = art.card  # its input normalisation is applied by the classifier's embed, as for a checkpoint
    return ZeroShotClassifier(encoder, space, labels, art.templates, device=str(encoder.device), top_k=top_k,
                              logit_scale=card.logit_scale, model_name=card.name,
                              precision=card.inference_precision,
                              input_normalization=card.input_normalization, input_cap=card.cap,
                              input_max_points=card.max_points)


def load_point_classifier(path: str | Path | None, labels: Sequence[str] | None = None,
                          templates: Sequence[str] | None = None, *, device: str = 'auto', top_k: int = 5,
                          **checkpoint_options) -> ZeroShotClassifier:
    """The point classifier of a checkpoint file or an exported artefact folder: the one place that tells
    them apart (predict, label_frames). labels None: the model's default (the driving vocabulary, or the
    artefact's own). checkpoint_options (text_space, cache_dir, input_normalization) apply to checkpoints:
    an artefact carries its card and class embeddings."""
    if path and Path(path).is_dir():
        return load_exported(path, labels, device=None if device == 'auto' else device, top_k=top_k)
    return ZeroShotClassifier.from_checkpoint(path, labels, templates, device=device, top_k=top_k,
                                              **checkpoint_options)
