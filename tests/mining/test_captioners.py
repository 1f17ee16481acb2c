"""Template captions from category, attributes and size; the VLM captioner's clear errors."""

import pytest

from blendclip_core.mining.captioners import (
    CaptionerError,
    CaptionInput,
    TemplateCaptioner,
    check_captioner,
    create_captioner,
)


@pytest.mark.parametrize('category, attributes, size, expected', [
    ('vehicle.car', ('vehicle.parked',), (4.5, 1.9, 1.6), 'a parked car, about 4.5 m long'),
    ('human.pedestrian.adult', ('pedestrian.moving',), (0.7, 0.6, 1.75),
     'a walking pedestrian, about 1.8 m tall'),
    ('vehicle.bicycle', ('cycle.without_rider',), (1.7, 0.6, 1.2),
     'a bicycle without a rider, about 1.7 m long'),
    ('vehicle.motorcycle', ('cycle.with_rider', 'vehicle.moving'), (2.1, 0.8, 1.5),
     'a moving motorcycle with a rider, about 2.1 m long'),
    ('movable_object.trafficcone', (), (0.4, 0.4, 0.8), 'a traffic cone, about 0.8 m tall'),
    ('vehicle.emergency.ambulance', ('vehicle.stopped',), (6.0, 2.3, 2.6),
     'a stopped ambulance, about 6.0 m long'),
    ('animal', (), (0.0, 0.0, 0.0), 'an animal'),
    ('static_object.unknown_thing', ('made.up',), (1.0, 1.0, 0.5), 'an unknown thing, about 1.0 m long'),
])
def test_template_captions(category, attributes, size, expected):
    assert TemplateCaptioner()([CaptionInput(category, attributes, size)]) == [expected]


def test_captioner_specs(tmp_path, capsys):
    assert isinstance(create_captioner('template'), TemplateCaptioner)
    with pytest.raises(CaptionerError, match='does not exist'):
        create_captioner(f'vlm:{tmp_path / "no-model"}')
    with pytest.raises(CaptionerError, match='unknown captioner'):
        create_captioner('gpt')
    with pytest.raises(CaptionerError, match='unknown captioner'):
        check_captioner('gpt')
    check_captioner('template')
    (tmp_path / 'model').mkdir()
    check_captioner(f'vlm:{tmp_path / "model"}')  # exists: validated without loading anything
    from training.mine import main

    rc = main(['--dataroot', str(tmp_path), '--out', str(tmp_path / 'o'), '--captioner',
               f'vlm:{tmp_path / "no-model"}', '--no-progress'])
    assert rc == 2 and 'does not exist' in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()  # failed before writing anything
