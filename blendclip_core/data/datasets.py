"""Random-access Triplet datasets: mined shards (with their CLIP embeddings) and CAD sources.

`TripletDataset(root)` is a Sequence of Triplets over a blendclip-mine output directory; it exposes
`labels` and `num_points` without reading any points (the trainer's pool uses them), validates shards
against the index (size and CRC32 by default, sha256 on request) and either raises `CorruptShardError`
or skips a bad shard and counts it. With `embeddings=<text space spec>` every Triplet carries the text /
image embeddings blendclip-embed stored for that space.

The CAD functions at the end return the CAD readers of `blendclip_core.mining.cad` as sources, e.g. for
a training config's `callable` source: target 'blendclip_core.data.datasets:openshape_source'.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from blendclip_core.data.shards import (
    DEFAULT_VERIFY,
    CorruptShardError,
    ShardError,
    read_index,
    read_members,
    read_sample,
    verify_shard,
)
from blendclip_core.data.triplet import Triplet

logger = logging.getLogger(__name__)


class TripletDataset(Sequence):
    """Triplets of a shard directory, in index order (optionally one split)."""

    def __init__(self, root: str | Path, split: str | None = None, embeddings: str | None = None,
                 verify: str = DEFAULT_VERIFY, on_corrupt: str = 'raise', include_void: bool = True,
                 exclude_classes: Sequence[str] = ()):
        """root: a blendclip-mine output; split: only shards of that split; embeddings: a text space spec
        whose blendclip-embed output to attach; verify: 'none' | 'size' | 'crc32' (default) | 'sha256';
        on_corrupt: 'raise' | 'skip'; include_void: keep objects without a benchmark class;
        exclude_classes: benchmark classes to hold out (the method's unseen-class experiments)."""
        if on_corrupt not in ('raise', 'skip'):
            raise ValueError(f"on_corrupt must be 'raise' or 'skip', got {on_corrupt!r}")
        self.root = Path(root)
        self.index = read_index(self.root)
        held_out = set(exclude_classes) - {''}
        self.skipped: Counter = Counter()
        self.shards: list[dict] = []
        self.entries: list[tuple[int, dict]] = []
        for record in self.index['shards']:
            if split is not None and record.get('split') != split:
                continue
            try:
                verify_shard(self.root, record, verify)
                members = read_members(self.root, record)
            except CorruptShardError as exc:
                if on_corrupt == 'raise':
                    raise
                logger.warning('skipping corrupt shard (%d samples): %s', record['count'], exc)
                self.skipped['corrupt_shard'] += 1
                self.skipped['samples'] += record['count']
                continue
            self.shards.append(record)
            for entry in members:
                if (include_void or entry['label_coarse']) and entry['label_coarse'] not in held_out:
                    self.entries.append((len(self.shards) - 1, entry))
        self.labels = [e['label_coarse'] or e['label'] for _, e in self.entries]
        self.num_points = [int(e['num_points']) for _, e in self.entries]
        self.embeddings = embeddings
        self._emb = self._load_embeddings(embeddings) if embeddings else None
        self._files: dict[int, object] = {}
        self._pid = os.getpid()

    def _load_embeddings(self, spec: str) -> list[dict]:
        from blendclip_core.mining.embed import embeddings_dir, shard_embeddings_name

        folder = embeddings_dir(self.root, spec)
        meta_path = folder / 'meta.json'
        if not meta_path.is_file():
            raise ShardError(f'no embeddings for text space {spec!r} in {folder} (run blendclip-embed '
                             f'--shards {self.root} --space {spec})')
        meta = json.loads(meta_path.read_text())
        out = []
        for record in self.shards:
            if meta['shards'].get(record['name']) != record['sha256']:
                raise ShardError(f'embeddings of {record["name"]} for {spec!r} are missing or stale '
                                 f'(computed for another version of the shard); rerun blendclip-embed')
            with np.load(folder / shard_embeddings_name(record['name'])) as z:
                keys = [str(k) for k in z['keys']]
                out.append({'row': {k: i for i, k in enumerate(keys)}, 'text': z['text'], 'image': z['image'],
                            'has_image': z['has_image']})
        return out

    def __len__(self) -> int:
        return len(self.entries)

    def _file(self, shard: int):
        if os.getpid() != self._pid:  # a forked DataLoader worker must not share file offsets
            self._files, self._pid = {}, os.getpid()
        if shard not in self._files:
            self._files[shard] = open(self.root / self.shards[shard]['name'], 'rb')
        return self._files[shard]

    def __getitem__(self, i: int) -> Triplet:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        shard, entry = self.entries[i]
        triplet = read_sample(self._file(shard), entry)
        if self._emb is not None:
            emb = self._emb[shard]
            row = emb['row'][entry['key']]
            triplet.text_embedding = emb['text'][row]
            triplet.image_embedding = emb['image'][row] if emb['has_image'][row] else None
        return triplet

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state['_files'] = {}
        return state


def ulip_objaverse_source(root: str, **kwargs):
    """ULIP-2 / Objaverse-style folder as a Triplet source (see mining/cad.py for the layout)."""
    from blendclip_core.mining.cad import UlipTripletFolder

    return UlipTripletFolder(root, **kwargs)


def openshape_source(root: str, **kwargs):
    """OpenShape-style folder of .npy dicts as a Triplet source (see mining/cad.py for the layout)."""
    from blendclip_core.mining.cad import OpenShapeFolder

    return OpenShapeFolder(root, **kwargs)


def mesh_source(root: str, **kwargs):
    """Meshes (.glb, .ply, .stl, .obj) sampled into dense point clouds with template captions."""
    from blendclip_core.mining.cad import MeshSampler

    return MeshSampler(root, **kwargs)
