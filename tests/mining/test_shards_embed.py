"""Shards: round trip, bounded size, corrupt shards; TripletDataset; blendclip-embed with a tiny OpenCLIP."""

import io
import json
from collections import Counter

import numpy as np
import pytest
from helpers.nuscenes_dataroot import make_nuscenes_dataroot
from PIL import Image

from blendclip_core.data.datasets import TripletDataset
from blendclip_core.data.shards import (
    CorruptShardError,
    ShardError,
    ShardWriter,
    iter_shard,
    iter_shards,
    read_index,
)
from blendclip_core.data.triplet import Triplet
from blendclip_core.mining.objects import MineConfig
from blendclip_core.mining.run import RunConfig, run_mining

pytest.importorskip('nuscenes')


@pytest.fixture(scope='module')
def mined(tmp_path_factory):
    base = tmp_path_factory.mktemp('mined')
    make_nuscenes_dataroot(base / 'root', scenes=2, samples_per_scene=3, sweeps_per_sample=1)
    out = base / 'out'
    config = MineConfig(sweeps=2, min_crop_px=20)
    run_mining(RunConfig(str(base / 'root'), 'v1.0-mini', 'all', str(out), config), progress=False)
    return out


def _triplet(i: int, n: int = 10, image: bool = False) -> Triplet:
    buf = io.BytesIO()
    if image:
        Image.new('RGB', (8, 8), (i, 0, 0)).save(buf, format='JPEG')
    return Triplet(key=f'k{i:03d}', points=np.full((n, 4), i, np.float32), caption=f'object {i}',
                   label='vehicle.car' if i % 2 else 'animal', label_coarse='car' if i % 2 else '',
                   image=buf.getvalue() or None, meta={'i': i})


def test_writer_rolls_bounded_shards_and_round_trips(tmp_path):
    with ShardWriter(tmp_path, 'part', max_bytes=1 << 20, max_samples=3) as writer:
        for i in range(8):
            writer.write(_triplet(i, image=i % 3 == 0))
    records = writer.records
    assert [r['count'] for r in records] == [3, 3, 2]
    assert [r['name'] for r in records] == ['part-0000.tar', 'part-0001.tar', 'part-0002.tar']
    assert records[0]['classes'] == {'(void)': 2, 'car': 1}
    got = [t for r in records for t in iter_shard(tmp_path / r['name'])]
    assert [t.key for t in got] == [f'k{i:03d}' for i in range(8)]
    for i, t in enumerate(got):
        np.testing.assert_array_equal(t.points, _triplet(i).points)
        assert t.meta == {'i': i} and t.is_void == (i % 2 == 0) and (t.image is not None) == (i % 3 == 0)
    assert not list(tmp_path.glob('.*'))
    with ShardWriter(tmp_path / 'small', 'x', max_bytes=4096) as small:
        for i in range(4):
            small.write(_triplet(i, n=100))
    assert len(small.records) == 4  # each sample alone exceeds half the bound
    with pytest.raises(ValueError):
        ShardWriter(tmp_path, 'bad').write(_triplet(0).__class__(key='a.b', points=np.zeros((1, 3)),
                                                                   caption='', label=''))


def test_dataset_matches_streamed_shards(mined):
    index = read_index(mined)
    ds = TripletDataset(mined)
    assert len(ds) == index['num_samples'] == len(ds.labels) == len(ds.num_points)
    streamed = list(iter_shards(mined, verify='sha256'))
    assert [t.key for t in streamed] == [ds[i].key for i in range(len(ds))]
    for i in (0, len(ds) // 2, -1):
        a, b = ds[i], streamed[i]
        np.testing.assert_array_equal(a.points, b.points)
        assert (a.caption, a.label, a.label_coarse, a.image, a.meta) == (b.caption, b.label, b.label_coarse,
                                                                          b.image, b.meta)
        assert a.points.shape == (ds.num_points[i], 5)
    assert sum(1 for t in streamed if t.image) == index['images']['ok'] > 0
    assert Counter_of(ds.labels, index)
    no_void = TripletDataset(mined, include_void=False)
    assert len(no_void) == len(ds) - index['classes'].get('(void)', 0)
    assert len(TripletDataset(mined, split='nonexistent')) == 0
    held = TripletDataset(mined, exclude_classes=('car', 'pedestrian'))
    assert len(held) == len(ds) - index['classes']['car'] - index['classes']['pedestrian']
    assert not {'car', 'pedestrian'} & set(held.labels)
    import pickle

    ds[0]  # opens a shard file; a pickled copy (DataLoader worker) opens its own
    copy = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(copy[3].points, ds[3].points)


def Counter_of(labels, index) -> bool:
    from collections import Counter

    coarse = Counter(lbl for lbl in labels if '.' not in lbl and lbl != 'animal')
    return all(index['classes'][k] == v for k, v in coarse.items())


def test_corrupt_shards_raise_or_are_skipped(mined, tmp_path):
    import shutil

    out = tmp_path / 'copy'
    shutil.copytree(mined, out)
    index = read_index(out)
    first = out / index['shards'][0]['name']
    data = bytearray(first.read_bytes())
    data[700] ^= 0xFF  # same size, other bytes
    first.write_bytes(bytes(data))
    TripletDataset(out, verify='size')  # a size check does not see it
    with pytest.raises(CorruptShardError, match='checksum'):
        TripletDataset(out, verify='sha256')
    with pytest.raises(CorruptShardError, match='checksum'):
        list(iter_shards(out, verify='sha256'))
    second = out / index['shards'][1]['name']
    second.write_bytes(second.read_bytes()[:1000])
    with pytest.raises(CorruptShardError, match='bytes'):
        TripletDataset(out, verify='size')
    ds = TripletDataset(out, verify='sha256', on_corrupt='skip')
    assert ds.skipped['corrupt_shard'] == 2 and len(ds) == index['num_samples'] - sum(
        r['count'] for r in index['shards'][:2])
    with pytest.raises(ShardError, match='index.json'):
        TripletDataset(tmp_path / 'empty')


def test_same_size_corruption_is_caught_by_default(mined, tmp_path):
    """The default read (no verify argument) checks each shard's CRC32, also for an older index that
    has only sha256, and the skip policy counts the shard."""
    import shutil

    out = tmp_path / 'copy'
    shutil.copytree(mined, out)
    index = read_index(out)
    assert all(isinstance(r['crc32'], int) for r in index['shards'])
    first = out / index['shards'][0]['name']
    data = bytearray(first.read_bytes())
    data[700:732] = bytes(b ^ 0xFF for b in data[700:732])  # 32 flipped bytes, same size
    first.write_bytes(bytes(data))
    with pytest.raises(CorruptShardError, match=f'{first.name} checksum \\(crc32\\)'):
        TripletDataset(out)
    with pytest.raises(CorruptShardError, match='crc32'):
        list(iter_shards(out))
    ds = TripletDataset(out, on_corrupt='skip')
    assert ds.skipped['corrupt_shard'] == 1 and len(ds) == index['num_samples'] - index['shards'][0]['count']
    skipped = Counter()
    streamed = list(iter_shards(out, on_corrupt='skip', skipped=skipped))
    assert skipped['corrupt_shard'] == 1 and len(streamed) == len(ds)

    old = {**index, 'shards': [{k: v for k, v in r.items() if k != 'crc32'} for r in index['shards']]}
    (out / 'index.json').write_text(json.dumps(old))  # written before shards had a CRC32
    with pytest.raises(CorruptShardError, match='sha256'):
        TripletDataset(out)


TINY_CLIP = {
    'embed_dim': 32,
    'vision_cfg': {'image_size': 32, 'layers': 1, 'width': 32, 'patch_size': 16, 'head_width': 16},
    'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 32, 'heads': 2, 'layers': 1},
}


def test_embed_cli_and_dataset_embeddings(mined, tmp_path):
    import shutil

    import open_clip

    from blendclip_core.text_space import create_text_space
    from training.embed import main

    out = tmp_path / 'shards'
    shutil.copytree(mined, out)
    cfg = tmp_path / 'tiny-clip-mining.json'
    cfg.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(str(cfg))
    spec = 'openclip:tiny-clip-mining:none'
    with pytest.raises(ShardError, match='blendclip-embed'):
        TripletDataset(out, embeddings=spec)
    args = ['--shards', str(out), '--space', spec, '--device', 'cpu', '--batch-size', '7', '--no-progress',
            '--model-config', str(cfg)]
    assert main(args) == 0
    ds = TripletDataset(out, embeddings=spec)
    space = create_text_space(spec)
    with_image = [t for t in ds if t.image is not None]
    assert with_image and len(with_image) < len(ds)
    for t in [ds[0], ds[len(ds) - 1], with_image[0]]:
        assert t.text_embedding.shape == (32,)
        np.testing.assert_allclose(t.text_embedding, space.embed_texts([t.caption])[0].numpy(), atol=1e-5)
        assert (t.image_embedding is not None) == (t.image is not None)
    np.testing.assert_allclose(with_image[0].image_embedding,
                               space.embed_images([with_image[0].image])[0].numpy(), atol=1e-5)
    npz = list((out / 'embeddings' / 'openclip_tiny-clip-mining_none').glob('*.npz'))
    assert len(npz) == len(read_index(out)['shards'])
    assert main(args) == 0  # rerun: everything up to date, nothing recomputed
    meta = json.loads((npz[0].parent / 'meta.json').read_text())
    assert meta['spec'] == spec and meta['dim'] == 32
    assert main(['--shards', str(tmp_path / 'nowhere'), '--space', spec, '--no-progress']) == 2
