"""Default vocabularies and prompt templates, as data, and the one rule set a vocabulary must meet.

Dataset class names (`construction_vehicle`) are what annotations carry; display names
(`construction vehicle`) are what gets embedded, since the text encoder reads words, not identifiers.
`validate_vocabulary` (labels: `validate_labels`, templates: `validate_templates`) is the only check:
the classifier, the node's parameters and the tools all call it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

# nuScenes detection classes, in the benchmark's (mmdet3d) order: dataset name -> display name.
NUSCENES_10_NAMES: dict[str, str] = {
    'car': 'car',
    'truck': 'truck',
    'trailer': 'trailer',
    'bus': 'bus',
    'construction_vehicle': 'construction vehicle',
    'bicycle': 'bicycle',
    'motorcycle': 'motorcycle',
    'pedestrian': 'pedestrian',
    'traffic_cone': 'traffic cone',
    'barrier': 'barrier',
}
NUSCENES_10: tuple[str, ...] = tuple(NUSCENES_10_NAMES.values())

# TruckScenes evaluation classes (cross-dataset test), dataset name -> display name.
TRUCKSCENES_12_NAMES: dict[str, str] = {
    'animal': 'animal',
    'pedestrian': 'pedestrian',
    'barrier': 'barrier',
    'traffic_cone': 'traffic cone',
    'traffic_sign': 'traffic sign',
    'bicycle': 'bicycle',
    'bus': 'bus',
    'car': 'car',
    'other_vehicle': 'other vehicle',
    'motorcycle': 'motorcycle',
    'trailer': 'trailer',
    'truck': 'truck',
}
TRUCKSCENES_12: tuple[str, ...] = tuple(TRUCKSCENES_12_NAMES.values())

# What the node labels with when the user configures nothing: the nuScenes classes plus a few
# road users and street objects that detectors often box but the benchmark does not name.
DRIVING_EXTRA: tuple[str, ...] = ('kick scooter', 'stroller', 'dog', 'bench', 'traffic sign', 'trash can')
DRIVING: tuple[str, ...] = NUSCENES_10 + DRIVING_EXTRA

# Prompts for point-cloud classification. The method evaluates nuScenes with the first one alone;
# averaging a few phrasings makes the class embedding less sensitive to wording.
NUSCENES_EVAL_TEMPLATES: tuple[str, ...] = ('point cloud of a {}.',)
DEFAULT_TEMPLATES: tuple[str, ...] = (
    'point cloud of a {}.',
    'a point cloud of a {}.',
    'a lidar scan of a {}.',
    'a 3D point cloud of a {}.',
)

# Limits of a vocabulary (validate_vocabulary checks them for the node's parameters and the classifier).
# They bound what one parameter change may cost: embedding is labels x templates texts.
MAX_LABELS = 4096
MAX_LABEL_CHARS = 200
MAX_TEMPLATES = 64
MAX_TEMPLATE_CHARS = 200

VOCABULARIES: dict[str, tuple[str, ...]] = {
    'nuscenes': NUSCENES_10,
    'truckscenes': TRUCKSCENES_12,
    'driving': DRIVING,
}


def display_name(dataset_name: str) -> str:
    """`construction_vehicle` -> `construction vehicle` (any dataset's identifier style)."""
    return NUSCENES_10_NAMES.get(dataset_name) or TRUCKSCENES_12_NAMES.get(dataset_name) \
        or dataset_name.replace('_', ' ').strip()


def prompts(label: str, templates: Sequence[str]) -> list[str]:
    """The texts embedded for one label: each template filled with it."""
    return [t.format(label) for t in templates]


def vocabulary_version(labels: Sequence[str], templates: Sequence[str], space_spec: str) -> str:
    """Short content hash of what prediction indices mean (labels, templates, text space).

    Published with every prediction so that consumers can tell two vocabularies apart even when
    they have the same length.
    """
    payload = json.dumps([list(labels), list(templates), space_spec], ensure_ascii=False)
    return hashlib.sha256(payload.encode('utf-8')).hexdigest()[:12]


class VocabularyError(ValueError):
    """Labels or templates that cannot form a vocabulary; the message says which and why."""


def validate_vocabulary(labels: Sequence[str],
                        templates: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Cleaned (labels, templates) or VocabularyError: non-empty, unique, non-blank, bounded."""
    return validate_labels(labels), validate_templates(templates)


def validate_labels(labels: Sequence[str]) -> tuple[str, ...]:
    """Labels with runs of whitespace collapsed, or VocabularyError ('a  b' and 'A b' collide)."""
    labels = _bounded_list(labels, 'labels', 'the vocabulary needs at least one label', MAX_LABELS)
    clean, seen = [], {}
    for i, label in enumerate(labels):
        if not isinstance(label, str):
            raise VocabularyError(f'label {i} is a {type(label).__name__}, not a string')
        label = ' '.join(label.split())
        if not label:
            raise VocabularyError(f'label {i} is empty or blank')
        if len(label) > MAX_LABEL_CHARS:
            raise VocabularyError(f'label {label[:40]!r}... is longer than {MAX_LABEL_CHARS} characters '
                                  f'({len(label)}): at most {MAX_LABEL_CHARS} are allowed')
        key = label.casefold()
        if key in seen:
            raise VocabularyError(f'label {label!r} appears twice (positions {seen[key]} and {i})')
        seen[key] = i
        clean.append(label)
    return tuple(clean)


def validate_templates(templates: Sequence[str]) -> tuple[str, ...]:
    """Prompt templates (each a plain format string with one {} for the label), or VocabularyError."""
    templates = _bounded_list(templates, 'prompt templates', 'at least one prompt template is needed',
                              MAX_TEMPLATES)
    for t in templates:
        if isinstance(t, str) and len(t) > MAX_TEMPLATE_CHARS:
            raise VocabularyError(f'template {t[:40]!r}... is longer than {MAX_TEMPLATE_CHARS} characters '
                                  f'({len(t)}): at most {MAX_TEMPLATE_CHARS} are allowed')
        if not isinstance(t, str) or t.count('{}') != 1:
            raise VocabularyError(f"template {t!r} must contain exactly one '{{}}' for the label")
        try:
            t.format('x')
        except (IndexError, KeyError, ValueError) as err:
            raise VocabularyError(f'template {t!r} is not a format string with one {{}}: {err}') from err
    if len(set(templates)) != len(templates):
        raise VocabularyError('templates must be unique')
    return tuple(templates)


def _bounded_list(values: Sequence[str], what: str, empty: str, limit: int) -> list:
    """`values` as a list, VocabularyError when it is one string, empty or longer than `limit`."""
    if isinstance(values, str):
        raise VocabularyError(f'{what} must be a list of strings, not one string')
    values = list(values)
    if not values:
        raise VocabularyError(empty)
    if len(values) > limit:
        raise VocabularyError(f'{len(values)} {what}: at most {limit} are allowed')
    return values
