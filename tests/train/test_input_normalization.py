"""The trainer composes batches with the model's input normalisation, for every domain alike."""

import numpy as np
import pytest

from blendclip_core.data.triplet import Triplet
from blendclip_core.train.augment import AugmentConfig
from blendclip_core.train.config import ConfigError, load_config
from blendclip_core.train.sources import collate, prepare_objects


def _triplets():
    rng = np.random.default_rng(0)
    return [Triplet(key=f'k{i}', points=(rng.normal(0, 3, (n, 3)) + 5).astype(np.float32), caption='',
                    label='car', label_coarse='car', domain=d, text_embedding=np.ones(4, np.float32),
                    meta={'box_lwh': [4, 2, 1.5]})
            for i, (n, d) in enumerate([(50, 'synthetic'), (2000, 'real')])]


def test_unit_sphere_for_every_domain_metric_unchanged():
    trips, rngs = _triplets(), lambda: [np.random.default_rng(i) for i in range(2)]
    sphere = prepare_objects(trips, 3, 512, rngs(), 'unit_sphere')
    assert [len(p) for p in sphere] == [50, 512]
    assert all(np.linalg.norm(p, axis=1).max() <= 1.0 + 1e-6 for p in sphere)
    metric = prepare_objects(trips, 3, 512, rngs(), 'metric')
    np.testing.assert_array_equal(metric[0], trips[0].points)  # coordinates as stored


def test_box_size_channels_in_batches():
    off = AugmentConfig(enabled=False) if 'enabled' in AugmentConfig.__dataclass_fields__ else AugmentConfig()
    batch = collate(_triplets(), [False, True], 3, 512, off, [np.random.default_rng(i) for i in range(2)], 4,
                    'unit_sphere', box_size=True)
    assert batch.objects.points.shape[1] == 6
    np.testing.assert_allclose(batch.objects.points[:, 3:], [[0.4, 0.2, 0.15]] * len(batch.objects.points))


def test_unknown_normalization_is_a_config_error():
    with pytest.raises(ConfigError, match='data.normalization'):
        load_config(None, ['data.normalization=metres'])
