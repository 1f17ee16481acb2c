"""Triplet shards: WebDataset-style tar files plus a member listing and a directory index.

A shard `<stem>-<nnnn>.tar` holds, per triplet, consecutive members named by its key (no dots):
  <key>.npy   points, float32 (N, C) (np.save format)
  <key>.json  {'key', 'caption', 'label', 'label_coarse', 'domain', 'meta'} (sorted keys, UTF-8)
  <key>.jpg   the camera crop, only when there is one
so `tar tf`, `webdataset` and plain Python can read it. Next to it, `<stem>-<nnnn>.idx.json` lists every
sample with its label, point count and member offsets, for random access without scanning the tar.
Headers carry no time or owner, so the same triplets always give the same bytes.

Every file is written under a temporary name and os.replace'd into place, so a crash never leaves a
file that looks complete but is not. `index.json` (written the same way) records each shard's size,
CRC32 and sha256; readers check them and raise `CorruptShardError` (or skip the shard and count it). The
default check (`DEFAULT_VERIFY`, 'crc32') reads each shard once when it is opened: CRC32 runs at several
GB/s, so a same-size corruption (flipped bytes) is caught without paying for sha256 on every open.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tarfile
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from blendclip_core.atomic import atomic_write_bytes, dumps, sha256_file
from blendclip_core.data.triplet import REAL, Triplet

logger = logging.getLogger(__name__)

FORMAT = 'blendclip-shards/1'
INDEX_NAME = 'index.json'
DEFAULT_MAX_BYTES = 256 << 20
DEFAULT_MAX_SAMPLES = 10_000
VOID = '(void)'  # how void objects (label_coarse '') are counted in the index
VERIFY_LEVELS = ('none', 'size', 'crc32', 'sha256')  # each level includes the ones before it
DEFAULT_VERIFY = 'crc32'  # cheap enough for every open, and sees same-size corruption


class ShardError(RuntimeError):
    """A shard directory or shard that cannot be read."""


class CorruptShardError(ShardError):
    """A shard whose size or checksum differs from the index, or whose content cannot be decoded."""


def encode_triplet(t: Triplet) -> list[tuple[str, bytes]]:
    if not t.key or '.' in t.key or '/' in t.key:
        raise ValueError(f'triplet key {t.key!r} must be non-empty without dots or slashes')
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(t.points, dtype=np.float32), allow_pickle=False)
    doc = {'key': t.key, 'caption': t.caption, 'label': t.label, 'label_coarse': t.label_coarse,
           'domain': t.domain, 'meta': t.meta}
    files = [(f'{t.key}.npy', buf.getvalue()), (f'{t.key}.json', dumps(doc))]
    if t.image:
        files.append((f'{t.key}.jpg', bytes(t.image)))
    return files


def decode_triplet(files: dict[str, bytes]) -> Triplet:
    """files: extension ('npy', 'json', 'jpg') -> bytes of one sample."""
    try:
        doc = json.loads(files['json'])
        points = np.load(io.BytesIO(files['npy']), allow_pickle=False)
    except (KeyError, ValueError, OSError) as exc:
        raise CorruptShardError(f'undecodable sample: {exc}') from exc
    return Triplet(key=doc['key'], points=points, caption=doc['caption'], label=doc['label'],
                   label_coarse=doc.get('label_coarse', ''), domain=doc.get('domain', REAL),
                   image=files.get('jpg'), meta=doc.get('meta', {}))


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ''
    return info


class ShardWriter:
    """Writes triplets into `<directory>/<stem>-0000.tar`, `-0001.tar`, ... of bounded size.

    A shard is rolled before a sample would push it over `max_bytes` or `max_samples`. `close()`
    returns one record per shard: name, size, crc32, sha256, count, classes (coarse, VOID for ''), fine
    (fine labels), members (idx file name) and members_sha256.
    """

    def __init__(self, directory: Path, stem: str, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_samples: int = DEFAULT_MAX_SAMPLES):
        self.directory, self.stem = Path(directory), stem
        self.max_bytes, self.max_samples = max_bytes, max_samples
        self.records: list[dict] = []
        self._tar = None
        self._tmp = None
        self._entries: list[dict] = []
        self._bytes = 0

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    def _name(self) -> str:
        return f'{self.stem}-{len(self.records):04d}.tar'

    def write(self, t: Triplet) -> None:
        files = encode_triplet(t)
        size = sum(512 + (len(b) + 511) // 512 * 512 for _, b in files)
        if self._tar is not None and (self._bytes + size > self.max_bytes
                                      or len(self._entries) >= self.max_samples):
            self._finish()
        if self._tar is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._tmp = self.directory / f'.{self._name()}.tmp-{os.getpid()}'
            self._tar = tarfile.open(self._tmp, 'w', format=tarfile.USTAR_FORMAT)
            self._entries, self._bytes = [], 0
        for name, data in files:
            self._tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))
        self._bytes += size
        self._entries.append({'key': t.key, 'label': t.label, 'label_coarse': t.label_coarse,
                              'num_points': int(len(t.points)), 'has_image': bool(t.image)})

    def _finish(self) -> None:
        self._tar.close()
        name = self._name()
        # member offsets from the finished file itself, so they are right whatever tarfile wrote
        with tarfile.open(self._tmp, 'r') as tar:
            offsets = {m.name: [m.offset_data, m.size] for m in tar.getmembers()}
        for e in self._entries:
            e['members'] = {ext: offsets[f'{e["key"]}.{ext}'] for ext in ('npy', 'json', 'jpg')
                            if f'{e["key"]}.{ext}' in offsets}
        idx_name = name[:-len('.tar')] + '.idx.json'
        idx_bytes = dumps({'format': FORMAT, 'shard': name, 'samples': self._entries})
        atomic_write_bytes(self.directory / idx_name, idx_bytes)
        size, sha, crc = self._tmp.stat().st_size, sha256_file(self._tmp), crc32_file(self._tmp)
        os.replace(self._tmp, self.directory / name)
        self.records.append({
            'name': name, 'size': size, 'crc32': crc, 'sha256': sha, 'count': len(self._entries),
            'classes': dict(sorted(Counter(e['label_coarse'] or VOID for e in self._entries).items())),
            'fine': dict(sorted(Counter(e['label'] for e in self._entries).items())),
            'members': idx_name, 'members_sha256': hashlib.sha256(idx_bytes).hexdigest()})
        self._tar, self._tmp = None, None

    def _abort(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tmp.unlink(missing_ok=True)
            self._tar = None

    def close(self) -> list[dict]:
        if self._tar is not None:
            self._finish()
        return self.records


def read_index(directory: Path) -> dict:
    path = Path(directory) / INDEX_NAME
    if not path.is_file():
        raise ShardError(f'no {INDEX_NAME} in {directory}: not a shard directory (run blendclip-mine first)')
    try:
        index = json.loads(path.read_text())
    except ValueError as exc:
        raise ShardError(f'{path} is not valid JSON: {exc}') from exc
    if index.get('format') != FORMAT:
        raise ShardError(f'{path}: unknown format {index.get("format")!r}, expected {FORMAT!r}')
    return index


def crc32_file(path: str | Path) -> int:
    crc = 0
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            crc = zlib.crc32(chunk, crc)
    return crc


def verify_shard(directory: Path, record: dict, level: str = DEFAULT_VERIFY) -> None:
    """Check a shard against its index record: 'none', 'size', 'crc32' (reads the whole file once,
    fast) or 'sha256' (reads it, slower). Records of indexes written before shards had a CRC32 are
    checked by their sha256 at the 'crc32' level, so the default never silently degrades to a size check."""
    if level not in VERIFY_LEVELS:
        raise ValueError(f'verify level must be one of {VERIFY_LEVELS}, got {level!r}')
    if level == 'none':
        return
    path = Path(directory) / record['name']
    if not path.is_file():
        raise CorruptShardError(f'shard {path} is missing')
    size = path.stat().st_size
    if size != record['size']:
        raise CorruptShardError(f'shard {path} has {size} bytes, the index says {record["size"]}')
    if level == 'crc32' and 'crc32' in record:
        if crc32_file(path) != record['crc32']:
            raise CorruptShardError(f'shard {path} checksum (crc32) differs from the index')
    elif level in ('crc32', 'sha256') and sha256_file(path) != record['sha256']:
        raise CorruptShardError(f'shard {path} checksum (sha256) differs from the index')


def read_members(directory: Path, record: dict) -> list[dict]:
    path = Path(directory) / record['members']
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorruptShardError(f'member listing {path} unreadable: {exc}') from exc
    if hashlib.sha256(data).hexdigest() != record['members_sha256']:
        raise CorruptShardError(f'member listing {path} checksum differs from the index')
    return json.loads(data)['samples']


def read_sample(fileobj, entry: dict) -> Triplet:
    """One sample by its member offsets (from read_members) from an open shard file."""
    files = {}
    for ext, (offset, size) in entry['members'].items():
        fileobj.seek(offset)
        files[ext] = fileobj.read(size)
        if len(files[ext]) != size:
            raise CorruptShardError(f'sample {entry["key"]}: member .{ext} truncated')
    return decode_triplet(files)


def iter_shard(path: Path) -> Iterator[Triplet]:
    """Stream the triplets of one tar shard in order (no index needed)."""
    try:
        with tarfile.open(path, 'r') as tar:
            key, files = None, {}
            for member in tar:
                stem, _, ext = member.name.partition('.')
                if key is not None and stem != key:
                    yield decode_triplet(files)
                    files = {}
                key = stem
                files[ext] = tar.extractfile(member).read()
            if files:
                yield decode_triplet(files)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise CorruptShardError(f'shard {path} unreadable: {exc}') from exc


def iter_shards(directory: Path, split: str | None = None, verify: str = DEFAULT_VERIFY,
                on_corrupt: str = 'raise', skipped: Counter | None = None) -> Iterator[Triplet]:
    """All triplets of a shard directory in index order; corrupt shards raise or are skipped+counted."""
    index = read_index(directory)
    for record in index['shards']:
        if split is not None and record.get('split') != split:
            continue
        try:
            verify_shard(directory, record, verify)
            yield from iter_shard(Path(directory) / record['name'])
        except CorruptShardError as exc:
            if on_corrupt == 'raise':
                raise
            logger.warning('skipping corrupt shard: %s', exc)
            if skipped is not None:
                skipped['corrupt_shard'] += 1
