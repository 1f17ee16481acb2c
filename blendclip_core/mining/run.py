"""A mining run: scenes in parallel processes, shards per scene, resumable, with an index and a report.

Layout of `out/`:
  <scene>-<nnnn>.tar, <scene>-<nnnn>.idx.json   shards of each scene (data/shards.py)
  _progress/<scene>.json                         completion marker of a scene: its shard records and counts
  mining.json                                     the run's settings; a rerun must use the same
  index.json                                      built from all markers (format, counts, shard list)
  report/                                         summary.json, summary.md, points_per_object.png

A scene is written completely (its shards os.replace'd into place) before its marker is, so a killed
run leaves at worst temporary files and shards of unmarked scenes; a rerun deletes those, redoes only
unmarked scenes and, because every scene's output depends on that scene alone, ends with the same
shards and index as an uninterrupted run.
"""

from __future__ import annotations

import ctypes
import json
import logging
import multiprocessing as mp
import os
import re
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from blendclip_core.atomic import atomic_write_json, remove_stale_temporaries
from blendclip_core.data.shards import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_SAMPLES,
    FORMAT,
    INDEX_NAME,
    VOID,
    ShardWriter,
)
from blendclip_core.datasets import get_format
from blendclip_core.datasets.devkit import scene_samples
from blendclip_core.datasets.frame import CorruptInputError
from blendclip_core.mining.captioners import CaptionFailure, check_captioner, create_captioner
from blendclip_core.mining.objects import MineConfig, mine_frame

logger = logging.getLogger(__name__)

PROGRESS_DIR = '_progress'
SETTINGS_NAME = 'mining.json'


class MiningError(RuntimeError):
    """A run that cannot start: bad split, no scenes, settings differing from the existing output."""


class ScenesFailedError(MiningError):
    """Some scenes failed (logged with tracebacks); the others are written and indexed, a rerun retries."""

    def __init__(self, scenes: list[str], index: dict, reasons: dict[str, str] | None = None):
        self.reasons = reasons or {}  # scene -> what failed it (exception type and message)
        named = [f'{s} ({self.reasons[s]})' if s in self.reasons else s for s in scenes[:10]]
        super().__init__(f'{len(scenes)} scene(s) failed and were not written: {"; ".join(named)}; '
                         f'the other scenes are in the index; rerun to retry')
        self.scenes, self.index = scenes, index


@dataclass(frozen=True)
class RunConfig:
    dataroot: str  # dataset root (the folder holding the version folder)
    version: str  # e.g. v1.0-mini, v1.0-trainval (nuScenes), v1.0-mini (TruckScenes)
    split: str  # official split name, 'all', or comma-separated scene names
    out: str  # output directory
    mine: MineConfig = field(default_factory=MineConfig)
    workers: int = 1  # processes; scenes are distributed over them
    shard_index: int = 0  # this machine's part of the scenes: scenes[shard_index::shard_count]
    shard_count: int = 1
    max_shard_bytes: int = DEFAULT_MAX_BYTES
    max_shard_samples: int = DEFAULT_MAX_SAMPLES


def safe_name(name: str) -> str:
    return re.sub(r'[^A-Za-z0-9_-]', '_', name)


def _reader(dataset: str):
    """(open_db(dataroot, version), frame(db, sample_token, config, scene_name), split_names(split))"""
    try:
        fmt = get_format(dataset)
    except ValueError as exc:
        raise MiningError(str(exc)) from None
    return fmt.open_db, lambda db, token, mine, scene: fmt.read_frame(db, token, mine.sweeps, scene), \
        fmt.split_scene_names


def resolve_scenes(db, split: str, split_names) -> list[tuple[str, str]]:
    """(name, token) of the scenes of `split` present in the dataroot, sorted by name."""
    available = {s['name']: s['token'] for s in db.scene}
    if split == 'all':
        wanted = sorted(available)
    else:
        official = split_names(split)
        if official is not None:
            wanted = [n for n in sorted(official) if n in available]
            if len(wanted) < len(official):
                logger.warning('split %s: %d of its %d scenes are in this dataroot', split, len(wanted),
                               len(official))
        else:
            wanted = sorted({n.strip() for n in split.split(',') if n.strip()})
            missing = [n for n in wanted if n not in available]
            if missing:
                raise MiningError(f'scenes not in the dataroot: {missing[:5]} (split {split!r} is neither an '
                                  f'official split nor a list of its scene names)')
    if not wanted:
        raise MiningError(f'split {split!r} selects no scene of this dataroot')
    return [(n, available[n]) for n in wanted]


# One database per worker process: inherited through fork, or loaded once by the initializer.
_STATE: dict = {}


def _db_key(cfg: RunConfig) -> tuple:
    return cfg.mine.dataset, str(Path(cfg.dataroot).resolve()), cfg.version


PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_POLL_S = 1.0  # the watchdog's period where the kernel cannot signal a parent's death


def die_with_parent(parent_pid: int) -> None:
    """Make this worker process end when `parent_pid` does, however the parent ends (SIGKILL too): a
    killed miner must not leave workers writing shards. Linux: the kernel sends SIGKILL
    (PR_SET_PDEATHSIG); elsewhere a daemon thread polls the parent pid."""
    if sys.platform.startswith('linux'):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os._exit(1)
            return
        logger.warning('prctl(PR_SET_PDEATHSIG) failed (errno %d): watching the parent pid instead',
                       ctypes.get_errno())

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name='parent-watchdog', daemon=True).start()


def _init_pool_worker(cfg: RunConfig, parent_pid: int) -> None:
    die_with_parent(parent_pid)
    _init_worker(cfg)


def _init_worker(cfg: RunConfig) -> None:
    if _STATE.get('db_key') != _db_key(cfg):
        open_db, _, _ = _reader(cfg.mine.dataset)
        _STATE['db'], _STATE['db_key'] = open_db(cfg.dataroot, cfg.version), _db_key(cfg)


def mine_scene(cfg: RunConfig, scene_name: str, scene_token: str) -> dict:
    """Mine one scene into its shards; returns (and writes) its completion marker."""
    _init_worker(cfg)
    db = _STATE['db']
    _, frame_of, _ = _reader(cfg.mine.dataset)
    key = ('captioner', cfg.mine.captioner)
    if key not in _STATE:  # one captioner (maybe a VLM on the GPU) per process
        _STATE[key] = create_captioner(cfg.mine.captioner)
    captioner = _STATE[key]
    out = Path(cfg.out)
    stem = safe_name(scene_name)
    _remove_scene_outputs(out, stem)
    skips, images, sweeps_skipped, num_points = Counter(), Counter(), Counter(), []
    with ShardWriter(out, stem, cfg.max_shard_bytes, cfg.max_shard_samples) as writer:
        for sample_token in scene_samples(db, scene_token):
            try:
                frame = frame_of(db, sample_token, cfg.mine, scene_name)
                triplets, frame_skips = _mine(frame, cfg, captioner)
            except CorruptInputError as exc:
                n = len(db.get('sample', sample_token)['anns'])
                logger.warning('sample %s skipped (%d boxes): %s', sample_token, n, exc)
                skips[exc.reason] += n
                continue
            except CaptionFailure:  # the captioner, not the data: the scene stays undone, a rerun retries
                raise
            except Exception as exc:  # a broken record must not end a run of days: count it, say where
                n = len(db.get('sample', sample_token)['anns'])
                logger.exception('sample %s skipped (%d boxes) after an unexpected error', sample_token, n)
                skips[f'error_{type(exc).__name__}'] += n
                continue
            for reason, _ in frame.skipped:
                sweeps_skipped[reason] += 1
            skips.update(frame_skips)
            for t in triplets:
                writer.write(t)
                images[t.meta['image_status']] += 1
                num_points.append(len(t.points))
        records = writer.close()
    marker = {'scene': scene_name, 'scene_token': scene_token, 'split': cfg.split,
              'shards': [{**r, 'scene': scene_name, 'split': cfg.split} for r in records],
              'objects': len(num_points), 'skipped': dict(sorted(skips.items())),
              'images': dict(sorted(images.items())), 'sweeps_skipped': dict(sorted(sweeps_skipped.items())),
              'num_points': num_points}
    (out / PROGRESS_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / PROGRESS_DIR / f'{stem}.json', marker)
    return marker


def _mine(frame, cfg: RunConfig, captioner):
    """Annotated boxes, or with `proxy` the lifted 2D detections (one detector per process)."""
    if not cfg.mine.proxy:
        return mine_frame(frame, cfg.mine, captioner, cfg.split)
    from blendclip_core.mining.proxy import create_detector
    from blendclip_core.mining.proxy_triplets import mine_proxy_frame

    key = ('detector', cfg.mine.proxy, cfg.mine.proxy_vocabulary)
    if key not in _STATE:
        vocabulary = [v.strip() for v in cfg.mine.proxy_vocabulary.split(',') if v.strip()]
        _STATE[key] = create_detector(cfg.mine.proxy, vocabulary)
    return mine_proxy_frame(frame, cfg.mine, _STATE[key], captioner, cfg.split)


def _remove_scene_outputs(out: Path, stem: str) -> None:
    for path in out.glob(f'{stem}-[0-9][0-9][0-9][0-9].*'):
        path.unlink()


def _clean_temporaries(out: Path) -> None:
    """Temporaries of a killed earlier run (shards, listings, markers); this run has written none yet."""
    n = remove_stale_temporaries(out) + remove_stale_temporaries(out / PROGRESS_DIR)
    if n:
        logger.info('removed %d temporary file(s) left by an interrupted run', n)


def _settings(cfg: RunConfig) -> dict:
    return {'format': FORMAT, 'dataset': cfg.mine.dataset, 'version': cfg.version, 'mine': asdict(cfg.mine),
            'max_shard_bytes': cfg.max_shard_bytes, 'max_shard_samples': cfg.max_shard_samples}


def _check_settings(cfg: RunConfig) -> None:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / SETTINGS_NAME
    settings = _settings(cfg)
    if path.is_file():
        old = json.loads(path.read_text())
        if old != settings:
            diff = sorted(k for k in settings if settings[k] != old.get(k))
            raise MiningError(f'{out} holds a run with other settings ({", ".join(diff)}); use another --out '
                              f'or the same settings to resume')
    else:
        atomic_write_json(path, settings)


def _marker_ok(out: Path, marker_path: Path) -> dict | None:
    try:
        marker = json.loads(marker_path.read_text())
    except (OSError, ValueError):
        return None
    for r in marker.get('shards', []):
        shard = out / r['name']
        if not shard.is_file() or shard.stat().st_size != r['size'] or not (out / r['members']).is_file():
            return None
    return marker


def load_markers(out: Path) -> list[dict]:
    markers = []
    for path in sorted((Path(out) / PROGRESS_DIR).glob('*.json')):
        marker = _marker_ok(Path(out), path)
        if marker is not None:
            markers.append(marker)
    return markers


def build_index(cfg: RunConfig, markers: list[dict]) -> dict:
    """The directory index: deterministic in the markers (no times), so reruns reproduce it."""
    classes, fine, skipped, images, sweeps = Counter(), Counter(), Counter(), Counter(), Counter()
    splits: dict[str, dict] = {}
    shards = []
    for m in sorted(markers, key=lambda m: m['scene']):
        s = splits.setdefault(m['split'], {'scenes': 0, 'samples': 0, 'classes': Counter()})
        s['scenes'] += 1
        for r in m['shards']:
            shards.append(r)
            classes.update(r['classes'])
            fine.update(r['fine'])
            s['samples'] += r['count']
            s['classes'].update(r['classes'])
        skipped.update(m['skipped'])
        images.update(m['images'])
        sweeps.update(m['sweeps_skipped'])
    return {**_settings(cfg), 'num_samples': sum(r['count'] for r in shards),
            'classes': dict(sorted(classes.items())), 'fine_classes': dict(sorted(fine.items())),
            'void_label': VOID,
            'splits': {k: {**v, 'classes': dict(sorted(v['classes'].items()))}
                       for k, v in sorted(splits.items())},
            'skipped': dict(sorted(skipped.items())), 'images': dict(sorted(images.items())),
            'sweeps_skipped': dict(sorted(sweeps.items())), 'scenes': len(markers),
            'shards': sorted(shards, key=lambda r: r['name'])}


def run_mining(cfg: RunConfig, progress: bool = True) -> dict:
    """Mine the selected scenes (skipping finished ones); returns the index."""
    from tqdm import tqdm

    if not 0 <= cfg.shard_index < cfg.shard_count:
        raise MiningError(f'--shard {cfg.shard_index}/{cfg.shard_count}: need 0 <= i < n')
    open_db, _, split_names = _reader(cfg.mine.dataset)
    check_captioner(cfg.mine.captioner)  # fail before any work; workers build their own captioner
    _check_settings(cfg)
    out = Path(cfg.out)
    _clean_temporaries(out)
    db = open_db(cfg.dataroot, cfg.version)
    _STATE['db'], _STATE['db_key'] = db, _db_key(cfg)  # forked workers inherit it
    scenes = resolve_scenes(db, cfg.split, split_names)[cfg.shard_index::cfg.shard_count]
    markers = {m['scene']: m for m in load_markers(out)}
    for name, _ in scenes:
        if name in markers and markers[name]['split'] != cfg.split:
            logger.warning('scene %s was mined before as part of split %r; kept as it is', name,
                           markers[name]['split'])
    done = set(markers)
    pending = [(n, t) for n, t in scenes if n not in done]
    logger.info('%d scenes selected, %d already done, %d to mine', len(scenes), len(scenes) - len(pending),
                len(pending))
    bar = tqdm(total=len(pending), desc='scenes', unit='scene', disable=not progress)
    failed: dict[str, str] = {}  # scene -> why; such a scene gets no marker, so a rerun retries it
    if cfg.workers <= 1 or len(pending) <= 1:
        for name, token in pending:
            try:
                mine_scene(cfg, name, token)
            except Exception as exc:
                logger.exception('scene %s failed', name)
                failed[name] = f'{type(exc).__name__}: {exc}'
            bar.update()
    else:
        ctx = mp.get_context('fork') if 'fork' in mp.get_all_start_methods() else None
        with ProcessPoolExecutor(cfg.workers, mp_context=ctx, initializer=_init_pool_worker,
                                 initargs=(cfg, os.getpid())) as pool:
            futures = {pool.submit(mine_scene, cfg, n, t): n for n, t in pending}
            for fut in as_completed(futures):
                try:
                    fut.result()
                except Exception as exc:
                    logger.exception('scene %s failed', futures[fut])
                    failed[futures[fut]] = f'{type(exc).__name__}: {exc}'
                bar.update()
    bar.close()
    markers = load_markers(out)
    index = build_index(cfg, markers)
    atomic_write_json(out / INDEX_NAME, index)
    from blendclip_core.mining.report import pick_examples, write_examples, write_report

    write_report(out, index, [n for m in markers for n in m['num_points']])
    if index['num_samples']:
        write_examples(out, pick_examples(out))
    if failed:
        raise ScenesFailedError(sorted(failed), index, failed)
    return index
