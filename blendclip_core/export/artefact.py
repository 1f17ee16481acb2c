"""The exported artefact on disk: a folder that says what it is and refuses to load when damaged.

    manifest.json     format, model card, vocabulary (labels, templates, text space), the exported
                      graph's inputs and size ranges, sha256 and size of every file, and its own
                      content hash (content_sha256, over everything else in it)
    vocabulary.npz    class embeddings (V, D) of the vocabulary, in the `file:` text space layout
                      (names, embeddings, spec, weights_id, templates): a vehicle needs no text model
    encoder.pt2 | encoder.onnx   the exported network, carrying the sha256 of the card it was built
                      from and its embedding width in its own metadata

`read_manifest` checks, in order: the manifest's own hash, every file's size and sha256, the
vocabulary's size and width against the manifest and the card; the loader then checks the card
against the one recorded inside the exported file. Every refusal is an ArtefactError naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from blendclip_core.atomic import atomic_write, atomic_write_bytes, dumps, sha256_bytes, sha256_file
from blendclip_core.checkpoint import HASH_KEY, CheckpointError, ModelCard, card_with_normalization

FORMAT = 'blendclip-export/1'
MANIFEST = 'manifest.json'
VOCABULARY_FILE = 'vocabulary.npz'
MODEL_FILES = {'aoti': 'encoder.pt2', 'onnx': 'encoder.onnx'}


class ArtefactError(ValueError):
    """An exported artefact that cannot be used: missing, damaged, or parts that do not belong together."""


@dataclass(frozen=True)
class Artefact:
    """A checked artefact folder."""

    root: Path
    manifest: dict[str, Any]
    card: ModelCard

    @property
    def kind(self) -> str:
        return self.manifest['model']['format']

    @property
    def model_path(self) -> Path:
        return self.root / self.manifest['model']['file']

    @property
    def vocabulary_path(self) -> Path:
        return self.root / VOCABULARY_FILE

    @property
    def labels(self) -> list[str]:
        return list(self.manifest['vocabulary']['labels'])

    @property
    def templates(self) -> list[str]:
        return list(self.manifest['vocabulary']['templates'])


def card_digest(card: ModelCard) -> str:
    """sha256 of the card's canonical JSON: what the exported file records of the card it was built from."""
    return sha256_bytes(card.to_json().encode())


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON (sorted keys), its own hash field left out."""
    return sha256_bytes(dumps({k: v for k, v in manifest.items() if k != HASH_KEY}))


def write_vocabulary(path: Path, labels: list[str], templates: list[str], embeddings: np.ndarray,
                     spec: str, weights_id: str) -> None:
    """Class embeddings in PrecomputedTextSpace's layout, so `file:<path>` serves them."""
    with atomic_write(path) as f:
        np.savez(f, names=np.array(labels, dtype=str), embeddings=embeddings.astype(np.float32),
                 spec=np.array(spec), weights_id=np.array(weights_id),
                 templates=np.array(templates, dtype=str))


def write_manifest(root: Path, card: ModelCard, model: dict[str, Any], vocabulary: dict[str, Any]) -> Path:
    """manifest.json over the files already in `root` (the model file and vocabulary.npz), sealed."""
    names = [model['file'], VOCABULARY_FILE]
    files = {n: {'sha256': sha256_file(root / n), 'bytes': (root / n).stat().st_size} for n in names}
    manifest = {'format': FORMAT, 'card': json.loads(card.to_json()), 'card_sha256': card_digest(card),
                'model': model, 'vocabulary': vocabulary, 'files': files}
    manifest[HASH_KEY] = manifest_digest(manifest)
    atomic_write_bytes(root / MANIFEST, dumps(manifest))
    return root / MANIFEST


def read_manifest(root: str | Path) -> Artefact:
    """The checked manifest of an artefact folder (files hashed, vocabulary sized); ArtefactError else."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise ArtefactError(f'{path}: not found; is {root} a folder written by blendclip-export?')
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtefactError(f'{path}: unreadable ({e})') from e
    found = manifest.get('format') if isinstance(manifest, dict) else None
    if found != FORMAT:
        raise ArtefactError(f'{path}: format {found!r}, expected {FORMAT!r}')
    if manifest.get(HASH_KEY) != manifest_digest(manifest):
        raise ArtefactError(f'{path}: content differs from its hash ({HASH_KEY}): edited or corrupted')
    for name, entry in manifest['files'].items():
        _check_file(root / name, entry)
    try:  # an artefact exported before cards recorded their input normalisation is refused, named
        card = card_with_normalization(manifest['card'], path)
    except CheckpointError as e:
        raise ArtefactError(f'{e}; export it again from a checkpoint whose card records it') from e
    if card_digest(card) != manifest['card_sha256']:
        raise ArtefactError(f'{path}: the model card differs from the one the artefact was exported with')
    art = Artefact(root, manifest, card)
    check_vocabulary(art)
    return art


def _check_file(path: Path, entry: dict[str, Any]) -> None:
    if not path.is_file():
        raise ArtefactError(f'{path}: missing (listed in {MANIFEST})')
    size = path.stat().st_size
    if size != entry['bytes'] or sha256_file(path) != entry['sha256']:
        raise ArtefactError(f'{path}: content differs from its sha256 in {MANIFEST} ({size} bytes, '
                            f'{entry["bytes"]} expected): truncated or corrupted; export again')


def check_vocabulary(art: Artefact) -> None:
    """vocabulary.npz holds one row per manifest label, as wide as the card's embeddings."""
    path = art.vocabulary_path
    try:
        with np.load(path, allow_pickle=False) as z:
            names, shape = [str(n) for n in z['names']], z['embeddings'].shape
    except (OSError, KeyError, ValueError) as e:
        raise ArtefactError(f'{path}: unreadable vocabulary ({e})') from e
    labels = art.labels
    if len(shape) != 2 or shape[0] != len(names) or names != labels:
        raise ArtefactError(f'{path}: {shape[0] if shape else 0} class embeddings for {len(names)} names; '
                            f'{MANIFEST} lists {len(labels)} labels: wrong vocabulary for this artefact')
    if shape[1] != art.card.embed_dim:
        raise ArtefactError(f'{path}: class embeddings of width {shape[1]}, the model card '
                            f'({art.card.name}) embeds into {art.card.embed_dim}')


def check_model_metadata(art: Artefact, metadata: dict[str, str]) -> None:
    """The exported file was built from this manifest's card and embeds into its width."""
    recorded = metadata.get('card_sha256')
    if recorded != art.manifest['card_sha256']:
        raise ArtefactError(f'{art.model_path}: built from another model card (card sha256 {recorded}) '
                            f'than the one in {art.root / MANIFEST} ({art.card.name}, '
                            f'{art.manifest["card_sha256"]}): wrong card')
    if metadata.get('embed_dim') != str(art.card.embed_dim):
        raise ArtefactError(f'{art.model_path}: embeds into {metadata.get("embed_dim")} dimensions, the card '
                            f'says {art.card.embed_dim}')
