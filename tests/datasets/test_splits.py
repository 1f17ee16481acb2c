"""The real-data splits: what the issue fixes, and never an object or file in both dev and training."""

from real_data import DATA, real

from blendclip_core.datasets.splits import SPLITS, split_frames, split_members


def test_splits_are_the_fixed_logs_and_frames():
    av2_logs = {s: {m.path.split('/')[-1][:8] for m in SPLITS[s] if m.source == 'av2'} for s in SPLITS}
    assert av2_logs == {'train': {'7fab2350'}, 'dev': {'adcf7d18', '02a00399'}}
    assert len(split_members('train')) == 2 and {m.source for m in SPLITS['train']} == {'av2'}
    others = {m.path for m in SPLITS['dev'] if m.source != 'av2'}
    assert others == {'nuscenes_sample', 'kitti_sample/000008.pkl'}


def test_dev_and_training_share_no_file_and_no_av2_track():
    real('av2_sample')
    seen = {}
    for split in SPLITS:
        frames = [f for _, f in split_frames(split, DATA)]
        seen[split] = ({s.filename for f in frames for s in f.sweeps},
                       {a.instance_token for f in frames if f.dataset == 'av2' for a in f.annotations})
    assert seen['train'][1] and seen['dev'][1], 'both splits hold AV2 tracks'
    assert not seen['train'][0] & seen['dev'][0]
    assert not seen['train'][1] & seen['dev'][1]
    assert len(seen['train'][0]) == 2 and len(seen['dev'][0]) == 4
