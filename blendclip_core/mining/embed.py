"""Frozen CLIP embeddings of mined triplets, computed once and stored next to the shards.

  <shards>/embeddings/<safe spec>/meta.json        {'spec', 'weights_id', 'dim', 'shards': {name: sha256}}
  <shards>/embeddings/<safe spec>/<shard stem>.npz keys (N,) str, text (N, D) float32,
                                                    image (N, D) float32 (zero rows where no crop),
                                                    has_image (N,) bool
Rows follow the shard's sample order. A shard is (re)embedded when its sha256 or the space's weights
differ from meta.json, so reruns resume and stale embeddings are never served.
"""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import numpy as np

from blendclip_core.atomic import atomic_write_bytes, atomic_write_json
from blendclip_core.data.shards import (
    iter_shard,
    read_index,
    verify_shard,
)

logger = logging.getLogger(__name__)

EMBEDDINGS_DIR = 'embeddings'


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
