"""PCD files (Point Cloud Library), ASCII and binary, any field layout: what a user's own driver writes.

The header names the fields (FIELDS/SIZE/TYPE/COUNT); x, y, z and an intensity field (intensity, i,
reflectance or remission, zeros when absent) are taken wherever they are, padding ('_' fields) and
other fields skipped, rows with a non-finite coordinate (organised clouds) dropped. binary_compressed
(LZF) is refused with a clear message.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blendclip_core.datasets.frame import CorruptInputError

INTENSITY_FIELDS = ('intensity', 'i', 'reflectance', 'remission')
_TYPES = {'F': 'f', 'I': 'i', 'U': 'u'}
_HEADER_KEYS = ('VERSION', 'FIELDS', 'SIZE', 'TYPE', 'COUNT', 'WIDTH', 'HEIGHT', 'VIEWPOINT', 'POINTS',
                'DATA')


def _header(raw: bytes) -> tuple[dict[str, list[str]], int]:
    """(header entries, offset of the data) of a PCD file."""
    header, offset = {}, 0
    while 'DATA' not in header:
        end = raw.find(b'\n', offset)
        if end < 0:
            raise ValueError('no DATA line in the header')
        line = raw[offset:end].decode('ascii', 'replace').strip()
        offset = end + 1
        if not line or line.startswith('#'):
            continue
        key, *values = line.split()
        if key.upper() not in _HEADER_KEYS:
            raise ValueError(f'not a PCD header line: {line[:60]!r}')
        header[key.upper()] = values
    return header, offset


def _dtype(header: dict[str, list[str]]) -> np.dtype:
    fields = header['FIELDS']
    sizes, types = header['SIZE'], header['TYPE']
    counts = header.get('COUNT', ['1'] * len(fields))
    if not len(fields) == len(sizes) == len(types) == len(counts):
        raise ValueError('FIELDS, SIZE, TYPE and COUNT differ in length')
    spec = []
    for i, (name, size, kind, count) in enumerate(zip(fields, sizes, types, counts)):
        name = name if name != '_' and name not in fields[:i] else f'_pad{i}'
        shape = (int(count),) if int(count) > 1 else ()
        spec.append((name, f'<{_TYPES[kind.upper()]}{int(size)}', shape))
    return np.dtype(spec)


def _records(raw: bytes, header: dict[str, list[str]], offset: int) -> np.ndarray:
    dtype = _dtype(header)
    count = int(header.get('POINTS', [0])[0]) or int(header['WIDTH'][0]) * int(header['HEIGHT'][0])
    mode = header['DATA'][0].lower()
    if mode == 'binary':
        if len(raw) - offset < count * dtype.itemsize:
            raise ValueError(f'{count} points of {dtype.itemsize} bytes announced, '
                             f'{len(raw) - offset} bytes of data')
        return np.frombuffer(raw, dtype, count=count, offset=offset)
    if mode == 'ascii':
        columns = sum(max(1, int(np.prod(dtype[n].shape))) for n in dtype.names)
        flat = np.array(raw[offset:].split(), np.float64)
        if flat.size != count * columns:
            raise ValueError(f'{count} points of {columns} values announced, {flat.size} values found')
        out = np.zeros(count, dtype)
        cols, j = flat.reshape(count, columns), 0
        for name in dtype.names:
            width = max(1, int(np.prod(dtype[name].shape)))
            out[name] = cols[:, j:j + width].reshape(out[name].shape)
            j += width
        return out
    raise ValueError(f'DATA {mode} is not supported (ascii and binary are; re-save the file as binary, '
                     'e.g. pcl_convert_pcd_ascii_binary in.pcd out.pcd 1)')


def load_pcd(path: str | Path) -> np.ndarray:
    """float32 (N, 4) x, y, z, intensity of a PCD file; CorruptInputError if unreadable."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        header, offset = _header(raw)
        records = _records(raw, header, offset)
        names = records.dtype.names
        missing = [c for c in 'xyz' if c not in names]
        if missing:
            raise ValueError(f'no field {missing} (fields: {list(names)})')
        intensity = next((records[f] for f in INTENSITY_FIELDS if f in names), np.zeros(len(records)))
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise CorruptInputError('corrupt_lidar', f'{path}: unreadable PCD ({exc})') from exc
    points = np.column_stack([records['x'], records['y'], records['z'], intensity]).astype(np.float32)
    return points[np.isfinite(points[:, :3]).all(axis=1)]
