"""Exported encoders for vehicles: AOTInductor (.pt2) and ONNX artefacts, and their loader (docs/deploy.md).

`export_artefact(checkpoint, 'aoti' | 'onnx', out_dir)` writes a self-describing folder (model card,
vocabulary embeddings, exported network, content hashes); `load_exported(out_dir)` returns a
ZeroShotClassifier over it, refusing damaged or mismatched artefacts with an ArtefactError.
"""

from blendclip_core.export.artefact import ArtefactError, read_manifest
from blendclip_core.export.runtime import ExportedEncoder, load_exported, load_point_classifier
from blendclip_core.export.writer import FORMATS, export_artefact

__all__ = ['FORMATS', 'ArtefactError', 'ExportedEncoder', 'export_artefact', 'load_exported',
           'load_point_classifier', 'read_manifest']
