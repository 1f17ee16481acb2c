"""Captions for generated objects, from templates filled with what the generator drew.

Each object gets several captions whose embeddings are averaged into its text target (the method's
'normalised mean over its captions'): one is a plain class prompt of the kind used at evaluation, the
others add the drawn variant, size, colour, state and, for LiDAR views, range. Captions never name a
class other than the object's own, so the text target stays class-specific.
"""

from __future__ import annotations

import numpy as np

CLASS_PROMPTS = (
    'point cloud of a {}.',
    'a point cloud of a {}.',
    'a lidar scan of a {}.',
    'a 3D point cloud of a {}.',
    'a {} on the street.',
)

SYNONYMS: dict[str, tuple[str, ...]] = {
    'car': ('passenger car', 'automobile'),
    'truck': ('lorry', 'delivery truck'),
    'trailer': ('semi-trailer', 'cargo trailer'),
    'bus': ('public bus', 'transit bus'),
    'construction vehicle': ('construction machine', 'piece of construction equipment'),
    'bicycle': ('bike', 'cycle'),
    'motorcycle': ('motorbike', 'scooter motorcycle'),
    'pedestrian': ('person', 'person on foot'),
    'traffic cone': ('road cone', 'safety cone'),
    'barrier': ('road barrier', 'traffic barrier'),
    'kick scooter': ('push scooter', 'standing scooter'),
    'stroller': ('pram', 'pushchair'),
    'dog': ('small dog', 'pet dog'),
    'bench': ('street bench', 'seat'),
    'traffic sign': ('road sign', 'sign on a pole'),
    'trash can': ('garbage bin', 'rubbish bin'),
}

COLOURS = ('white', 'black', 'silver', 'grey', 'red', 'blue', 'green', 'yellow', 'orange', 'brown')
COLOURED = {'car', 'truck', 'trailer', 'bus', 'construction vehicle', 'bicycle', 'motorcycle', 'kick scooter',
            'stroller', 'trash can'}
STATES = {
    'car': ('parked', 'moving', 'stopped at a light'), 'truck': ('parked', 'moving', 'loading'),
    'trailer': ('parked', 'being towed'), 'bus': ('at a stop', 'moving'),
    'construction vehicle': ('at a work site', 'parked'), 'bicycle': ('parked', 'being ridden'),
    'motorcycle': ('parked', 'being ridden'), 'pedestrian': ('walking', 'standing', 'crossing the road'),
    'dog': ('walking', 'sitting'),
}

ATTRIBUTE_TEMPLATES = (
    '{colour}{variant}, {state}.',
    '{size} {colour}{variant}.',
    '{variant} about {length:.1f} metres long.',
    '{colour}{variant} {state} by the road.',
)

SCAN_TEMPLATES = (
    'a sparse lidar scan of a {name} {range:.0f} metres away.',
    'a {name} seen by a lidar from {range:.0f} m.',
    'a few lidar points on a {name}.',  # 'a' kept: the class names here take it
)


def with_article(phrase: str) -> str:
    return ('an ' if phrase[:1].lower() in 'aeiou' else 'a ') + phrase


def _size_word(length: float, mean_length: float) -> str:
    ratio = length / mean_length
    return 'large' if ratio > 1.12 else 'small' if ratio < 0.88 else 'medium-sized'


def make_captions(name: str, variant: str, size_lwh: np.ndarray, mean_length: float,
                  rng: np.random.Generator, range_m: float | None = None) -> list[str]:
    """Three captions for one object: a class prompt, an attribute caption, a synonym or scan caption."""
    colour = f'{rng.choice(COLOURS)} ' if name in COLOURED else ''
    state = str(rng.choice(STATES.get(name, ('on the sidewalk', 'at the roadside'))))
    attr = with_article(str(rng.choice(ATTRIBUTE_TEMPLATES)).format(
        colour=colour, variant=variant, state=state, size=_size_word(float(size_lwh[0]), mean_length),
        length=float(max(size_lwh[0], size_lwh[1]))))
    captions = [str(rng.choice(CLASS_PROMPTS)).format(name), attr]
    if range_m is not None and rng.random() < 0.5:
        captions.append(str(rng.choice(SCAN_TEMPLATES)).format(name=name, range=range_m))
    else:
        captions.append(with_article(f'{rng.choice(SYNONYMS.get(name, (name,)))}.'))
    return captions
