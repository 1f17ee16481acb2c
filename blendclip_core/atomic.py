"""Atomic file writes and content hashes: the one place the project writes a file that must never be
seen half-written.

Every writer goes through `atomic_write`: a temporary file in the same folder (so the rename cannot
cross file systems), fsync, then os.replace. A crash leaves either the old file or the new one, plus
at worst a temporary whose name `stale_temporaries` recognises, so the next writer can sweep it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

TMP_MARK = '.tmp-'  # temporaries are named .<final name>.tmp-<pid>


def temporary_name(path: Path) -> Path:
    return path.with_name(f'.{path.name}{TMP_MARK}{os.getpid()}')


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = 'wb') -> Iterator[IO]:
    """Open a temporary beside `path` for writing; on success fsync and rename it to `path`, on any
    error remove it. The folder is created if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_write(path) as f:
        f.write(data)


def dumps(obj) -> bytes:
    """The project's JSON layout for files people read and diff: sorted keys, one-space indent."""
    return json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False).encode()


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_bytes(path, dumps(obj))


def stale_temporaries(folder: str | Path, name: str = '*') -> list[Path]:
    """Temporaries that an earlier, killed writer of `folder/name` left behind (any pid but ours)."""
    mine = f'{TMP_MARK}{os.getpid()}'
    return [p for p in Path(folder).glob(f'.{name}{TMP_MARK}*') if not p.name.endswith(mine)]


def remove_stale_temporaries(folder: str | Path, name: str = '*') -> int:
    found = stale_temporaries(folder, name)
    for p in found:
        p.unlink(missing_ok=True)
    return len(found)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()
