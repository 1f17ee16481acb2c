"""Frozen CLIP embeddings of mined shards and CAD triplets, computed once and stored beside the data.

Shards (`embed_shards`):
  <shards>/embeddings/<safe spec>/meta.json        {'spec', 'weights_id', 'dim', 'shards': {name: sha256}}
  <shards>/embeddings/<safe spec>/<shard stem>.npz keys (N,) str, text (N, D) float32,
                                                    image (N, D) float32 (zero rows where no crop),
                                                    has_image (N,) bool
Rows follow the shard's sample order. A shard is (re)embedded when its sha256 or the space's weights
differ from meta.json, so reruns resume and stale embeddings are never served.

Any other sequence of Triplets, e.g. a CAD folder (`embed_triplets`, `TripletsWithEmbeddings`):
  <root>/embeddings/<safe spec>/meta.json     {'spec', 'weights_id', 'dim', 'text_from', 'templates',
                                               'images' (whether the space embedded images)}
  <root>/embeddings/<safe spec>/triplets.npz  keys (N,) str, texts (N,) str (what was embedded: the
                                               caption, or the label with text_from='label'), text (N, D),
                                               image (N, D) (zero rows where no image), has_image (N,),
                                               image_md5 (N,) str ('' where no image)
One row per key; a rerun embeds only keys that are new or whose text or image changed (other keys already
in the file are kept, so several splits of one folder share it), and a reader refuses a triplet whose
text or image differs from what was embedded.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from blendclip_core.atomic import atomic_write_bytes, atomic_write_json
from blendclip_core.data.shards import (
    iter_shard,
    read_index,
    verify_shard,
)
from blendclip_core.data.triplet import Triplet

logger = logging.getLogger(__name__)

EMBEDDINGS_DIR = 'embeddings'
TRIPLETS_FILE = 'triplets.npz'
TEXT_FROM = ('caption', 'label')  # what of a triplet is embedded as its text


def safe_spec(spec: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.-]', '_', spec).strip('.') or 'space'


def embeddings_dir(root: Path, spec: str) -> Path:
    return Path(root) / EMBEDDINGS_DIR / safe_spec(spec)


def shard_embeddings_name(shard_name: str) -> str:
    return shard_name[:-len('.tar')] + '.npz' if shard_name.endswith('.tar') else shard_name + '.npz'


def _batched(fn, items: list, batch_size: int) -> np.ndarray:
    out = [np.asarray(fn(items[i:i + batch_size]), dtype=np.float32)
           for i in range(0, len(items), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def embed_shards(root: Path, space, batch_size: int = 64, progress: bool = True) -> dict:
    """Embed captions (and crops, when the space embeds images) of every shard; returns a summary."""
    from tqdm import tqdm

    root = Path(root)
    index = read_index(root)
    folder = embeddings_dir(root, space.spec)
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / 'meta.json'
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    weights_id = space.weights_id
    if meta.get('weights_id') != weights_id:
        meta = {'spec': space.spec, 'weights_id': weights_id, 'dim': None, 'shards': {}}
    has_images = callable(getattr(space, 'embed_images', None))
    if not has_images:
        logger.warning('text space %s embeds no images: only caption embeddings are stored', space.spec)
    done = skipped = texts = images = 0
    for record in tqdm(index['shards'], desc='shards', unit='shard', disable=not progress):
        npz = folder / shard_embeddings_name(record['name'])
        if meta['shards'].get(record['name']) == record['sha256'] and npz.is_file():
            skipped += 1
            continue
        verify_shard(root, record, 'sha256')
        triplets = list(iter_shard(root / record['name']))
        text = _batched(space.embed_texts, [t.caption for t in triplets], batch_size)
        dim = text.shape[1]
        with_image = [i for i, t in enumerate(triplets) if t.image] if has_images else []
        image = np.zeros((len(triplets), dim), np.float32)
        if with_image:
            crops = [triplets[i].image for i in with_image]
            image[with_image] = _batched(space.embed_images, crops, batch_size)
        has_image = np.zeros(len(triplets), bool)
        has_image[with_image] = True
        buf = io.BytesIO()
        np.savez(buf, keys=np.array([t.key for t in triplets]), text=text, image=image, has_image=has_image)
        atomic_write_bytes(npz, buf.getvalue())
        meta['dim'] = int(dim)
        meta['shards'][record['name']] = record['sha256']
        atomic_write_json(meta_path, meta)
        done += 1
        texts += len(triplets)
        images += len(with_image)
    return {'spec': space.spec, 'weights_id': weights_id, 'dir': str(folder), 'shards_embedded': done,
            'shards_up_to_date': skipped, 'texts': texts, 'images': images, 'dim': meta['dim']}


class EmbeddingsError(ValueError):
    """Embeddings that are missing, stale or of another width than asked; the message names the fix."""


def embedded_text(triplet: Triplet, text_from: str) -> str:
    """The text of a triplet that is embedded: its caption, or its label (text_from='label')."""
    if text_from not in TEXT_FROM:
        raise ValueError(f'text_from must be one of {TEXT_FROM}, got {text_from!r}')
    return triplet.caption if text_from == 'caption' else triplet.label


def _image_md5(triplet: Triplet) -> str:
    return hashlib.md5(triplet.image).hexdigest() if triplet.image else ''


def _embed_texts(space, texts: list[str], text_from: str, templates: Sequence[str],
                 batch_size: int) -> np.ndarray:
    """Captions through the text encoder; labels as the zero-shot head's class vectors (the same vectors
    the trainer's evaluation compares with), each distinct label once."""
    from blendclip_core.text_space import PrecomputedTextSpace, build_zero_shot_classifier

    if text_from == 'caption':
        if isinstance(space, PrecomputedTextSpace):
            raise EmbeddingsError(f'{space.spec} holds class embeddings only, it cannot embed captions: '
                                  'embed the labels (text_from label, blendclip-embed --text label)')
        return _batched(space.embed_texts, texts, batch_size)

    if '' in texts:
        raise EmbeddingsError('some triplets have no label, so they cannot be embedded by label: embed their '
                              'captions (text_from caption, blendclip-embed --text caption) or give labels')
    names = sorted(set(texts))
    rows = build_zero_shot_classifier(space, names, list(templates)).numpy().astype(np.float32)
    row_of = {name: i for i, name in enumerate(names)}
    return rows[[row_of[t] for t in texts]]


def _read_triplet_file(folder: Path) -> dict | None:
    path = folder / TRIPLETS_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def embed_triplets(triplets: Sequence[Triplet], folder: str | Path, space, text_from: str = 'caption',
                   templates: Sequence[str] = (), batch_size: int = 64, progress: bool = True) -> dict:
    """Text (and, when the space embeds images, image) embeddings of every triplet into `folder`
    (layout in the module docstring); returns a summary. templates: the prompts of text_from='label'."""
    from tqdm import tqdm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / 'meta.json'
    has_images = callable(getattr(space, 'embed_images', None))
    meta = {'spec': space.spec, 'weights_id': space.weights_id, 'dim': None, 'text_from': text_from,
            'templates': list(templates) if text_from == 'label' else [], 'images': has_images}
    old_meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    same = all(old_meta.get(k) == meta[k] for k in ('weights_id', 'text_from', 'templates', 'images'))
    old = _read_triplet_file(folder) if same else None
    if old_meta and not same:
        logger.info('%s was embedded with other weights, text or templates: embedding all again', folder)
    rows = {} if old is None else {str(k): i for i, k in enumerate(old['keys'])}
    items = [(t.key, embedded_text(t, text_from), _image_md5(t) if has_images else '', t.image)
             for t in tqdm(triplets, desc='triplets', unit='obj', disable=not progress)]
    keys = [k for k, *_ in items]
    if len(set(keys)) != len(keys):
        raise EmbeddingsError(f'{len(keys) - len(set(keys))} triplet keys repeat; embeddings are kept by key')
    todo = [i for i, (key, text, md5, _) in enumerate(items) if key not in rows
            or str(old['texts'][rows[key]]) != text or str(old['image_md5'][rows[key]]) != md5]
    if todo:
        text = _embed_texts(space, [items[i][1] for i in todo], text_from, templates, batch_size)
        image = np.zeros_like(text)
        with_image = [j for j, i in enumerate(todo) if items[i][2]]
        if with_image:
            renders = [items[todo[j]][3] for j in with_image]
            image[with_image] = _batched(space.embed_images, renders, batch_size)
        new = {'keys': np.array([items[i][0] for i in todo]), 'texts': np.array([items[i][1] for i in todo]),
               'text': text, 'image': image, 'has_image': np.isin(np.arange(len(todo)), with_image),
               'image_md5': np.array([items[i][2] for i in todo])}
        redone = {items[i][0] for i in todo}
        kept = [r for k, r in rows.items() if k not in redone]
        merged = new if not kept else {k: np.concatenate([old[k][kept], new[k]]) for k in new}
        buf = io.BytesIO()
        np.savez(buf, **merged)
        atomic_write_bytes(folder / TRIPLETS_FILE, buf.getvalue())
        meta['dim'] = int(text.shape[1])
        atomic_write_json(meta_path, meta)
    else:
        meta['dim'] = old_meta.get('dim')
    if not has_images:
        logger.warning('text space %s embeds no images: only text embeddings are stored', space.spec)
    return {'spec': space.spec, 'weights_id': space.weights_id, 'dir': str(folder), 'text_from': text_from,
            'triplets': len(items), 'embedded': len(todo), 'up_to_date': len(items) - len(todo),
            'images': sum(1 for i in todo if items[i][2]), 'dim': meta['dim']}


class TripletsWithEmbeddings(Sequence):
    """`triplets` with the embeddings `embed_triplets` stored in `folder` attached (replacing any they
    carry). keys: the triplets' keys, checked here against the file; command: how to (re)make the file,
    named in every error. A triplet whose text or image changed since it was embedded raises."""

    def __init__(self, triplets: Sequence[Triplet], folder: str | Path, keys: Sequence[str], command: str,
                 dim: int | None = None):
        self.triplets, self.folder, self.command = triplets, Path(folder), command
        meta_path = self.folder / 'meta.json'
        data = _read_triplet_file(self.folder)
        if data is None or not meta_path.is_file():
            raise EmbeddingsError(f'no embeddings in {self.folder}: run {command}')
        self.meta = json.loads(meta_path.read_text())
        if dim is not None and self.meta['dim'] != dim:
            raise EmbeddingsError(f'the embeddings in {self.folder} are {self.meta["dim"]}-d but {dim}-d are '
                                  "needed (the encoder's output width): embed with the training text space, "
                                  f'{command}')
        self.row = {str(k): i for i, k in enumerate(data['keys'])}
        missing = [k for k in keys if k not in self.row]
        if missing:
            raise EmbeddingsError(f'{len(missing)} of {len(keys)} objects have no embedding in {self.folder} '
                                  f'(e.g. {missing[:3]}; added since?): run {command}')
        self.data = data
        # what the trainer's pool reads without loading points, when the reader knows it
        self.labels = getattr(triplets, 'labels', None)
        self.num_points = getattr(triplets, 'num_points', None)

    def __len__(self) -> int:
        return len(self.triplets)

    def __getitem__(self, i: int) -> Triplet:
        t = self.triplets[i]
        row = self.row[t.key]
        text, md5 = embedded_text(t, self.meta['text_from']), _image_md5(t)
        image_changed = self.meta.get('images') and str(self.data['image_md5'][row]) != md5
        if str(self.data['texts'][row]) != text or image_changed:
            raise EmbeddingsError(f'the embeddings of {t.key!r} in {self.folder} are stale (its '
                                  f'{self.meta["text_from"]} or image changed since): run {self.command}')
        t.text_embedding = self.data['text'][row]
        t.image_embedding = self.data['image'][row] if self.data['has_image'][row] else None
        return t
