"""Captions for generated objects, from templates filled with what the generator drew.

Each object gets three captions whose embeddings are averaged into its text target (the method's
'normalised mean over its captions'): a plain class prompt of the kind used at evaluation, an attribute
caption (variant, size, colour, state) and a synonym or, for LiDAR views, a range caption. Captions never
name a class other than the object's own, so the text target stays class-specific.

The caption set is finite and enumerable (`all_captions`): it is embedded once into a
TextEmbeddingCache, so objects can be generated and embedded where the text model is not installed.
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
DEFAULT_STATES = ('on the sidewalk', 'at the roadside')
SIZE_WORDS = ('small', 'medium-sized', 'large')

ATTRIBUTE_TEMPLATES = (
    '{colour}{variant}, {state}.',
    '{size} {colour}{variant}.',
    '{colour}{variant} {state} near the road.',
)

RANGE_WORDS = ('close by', 'at medium range', 'far away')  # < 15 m, 15-30 m, > 30 m
SCAN_TEMPLATES = (
    'a sparse lidar scan of a {name} {range}.',
    'a {name} seen by a lidar {range}.',
    'a few lidar points on a {name} {range}.',
)


def with_article(phrase: str) -> str:
    return ('an ' if phrase[:1].lower() in 'aeiou' else 'a ') + phrase


def _size_word(length: float, mean_length: float) -> str:
    ratio = length / mean_length
    return SIZE_WORDS[2] if ratio > 1.12 else SIZE_WORDS[0] if ratio < 0.88 else SIZE_WORDS[1]


def _range_word(range_m: float) -> str:
    return RANGE_WORDS[0] if range_m < 15 else RANGE_WORDS[1] if range_m < 30 else RANGE_WORDS[2]


def _attribute(template: str, colour: str, variant: str, state: str, size: str) -> str:
    return with_article(template.format(colour=f'{colour} ' if colour else '', variant=variant, state=state,
                                        size=size))


def make_captions(name: str, variant: str, size_lwh: np.ndarray, mean_length: float,
                  rng: np.random.Generator, range_m: float | None = None) -> list[str]:
    """Three captions for one object: a class prompt, an attribute caption, a synonym or range caption."""
    colour = str(rng.choice(COLOURS)) if name in COLOURED else ''
    state = str(rng.choice(STATES.get(name, DEFAULT_STATES)))
    attr = _attribute(str(rng.choice(ATTRIBUTE_TEMPLATES)), colour, variant, state,
                      _size_word(float(size_lwh[0]), mean_length))
    captions = [str(rng.choice(CLASS_PROMPTS)).format(name), attr]
    if range_m is not None and rng.random() < 0.5:
        captions.append(str(rng.choice(SCAN_TEMPLATES)).format(name=name, range=_range_word(range_m)))
    else:
        captions.append(with_article(f'{rng.choice(SYNONYMS.get(name, (name,)))}.'))
    return captions


def all_captions(name: str, variants: tuple[str, ...]) -> list[str]:
    """Every caption make_captions can return for this class (for precomputing embeddings)."""
    out = [t.format(name) for t in CLASS_PROMPTS]
    colours = COLOURS if name in COLOURED else ('',)
    for v in variants:
        for t in ATTRIBUTE_TEMPLATES:
            for c in colours:
                for s in STATES.get(name, DEFAULT_STATES):
                    for z in SIZE_WORDS:
                        out.append(_attribute(t, c, v, s, z))
    out += [t.format(name=name, range=r) for t in SCAN_TEMPLATES for r in RANGE_WORDS]
    out += [with_article(f'{s}.') for s in SYNONYMS.get(name, (name,))]
    return list(dict.fromkeys(out))
