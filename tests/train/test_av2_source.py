"""The curriculum's real side reads the AV2 training share and nothing else (datasets.splits)."""

from pathlib import Path

import numpy as np
import pytest

from blendclip_core.datasets import real_source
from blendclip_core.datasets.splits import SPLITS, missing_files
from blendclip_core.synthetic.dataset import embed, save_npz

pytestmark = pytest.mark.skipif(bool(missing_files('train')),
                                reason='real data (../shared/data/av2_sample) is absent')


def _log(name: str) -> str:
    return Path(name).name.split('_')[0]


def test_only_training_share_files_are_read(monkeypatch):
    read = []
    from blendclip_core.datasets import labelled

    original = labelled.read_labelled_frames
    monkeypatch.setattr(labelled, 'read_labelled_frames',
                        lambda p, *a: read.append(Path(p)) or original(p, *a))
    gen = real_source.read_training_share()
    train = {Path(m.path).name for m in SPLITS['train']}
    dev_logs = {_log(m.path) for m in SPLITS['dev'] if m.source == 'av2'}
    assert {p.name for p in read} == train
    frames = {m['frame'] for m in gen.meta}
    assert {_log(f) for f in frames} == {'7fab2350'} and not {_log(f) for f in frames} & dev_logs
    assert len(gen) >= 100 and set(gen.labels) <= {'car', 'truck', 'trailer', 'bus', 'construction vehicle',
                                                    'bicycle', 'motorcycle', 'pedestrian', 'traffic cone',
                                                    'barrier'}
    assert all(len(p) >= 1 and np.abs(p).max() < 20 for p in gen.points)  # crops centred on their box
    assert all(c[0].count(lab) and len(c) == 3 for c, lab in zip(gen.captions, gen.labels))


def test_stored_share_is_a_real_source_with_box_sizes(tmp_path):
    gen = real_source.read_training_share(min_points=5)
    dim = 8
    path = save_npz(tmp_path / 'av2.npz', embed(gen, lambda texts: np.ones((len(texts), dim), np.float32)))
    triplets = real_source.av2_train_source(str(path), classes=['car'])
    assert len(triplets) == gen.labels.count('car') and triplets[0].domain == 'real'
    assert len(triplets[0].meta['box_lwh']) == 3 and triplets[0].text_embedding.shape == (dim,)
    assert min(triplets.num_points) >= 5
