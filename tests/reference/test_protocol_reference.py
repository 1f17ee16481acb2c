"""Our nuScenes evaluation protocol against the reference's: prompt template (data/templates.json),
CVPR-2019 class ranges (data/detection_cvpr_2019.json, read by the devkit's filter_eval_boxes in
prepare_data_nuscenes.get_gt_eval_boxes) and the category -> class map of its triplet preparation."""

from __future__ import annotations

import ast
import json

import numpy as np

from blendclip_core.evaluation.protocol import NUSCENES
from blendclip_core.mining.categories import NUSCENES_TO_DETECTION, coarse_label
from blendclip_core.vocabulary import NUSCENES_EVAL_TEMPLATES

NUSCENES_PROMPT_KEY = 'outdoors_1'  # the reference's nuScenes prompt set: method.md's one template


def _json(reference, name: str) -> dict:
    return json.loads((reference.root / 'data' / name).read_text())


def _general_to_detection(reference) -> dict[str, str]:
    """GENERAL_TO_DETECTION of prepare_data_nuscenes.py, read as data (the script imports the devkit)."""
    tree = ast.parse((reference.root / 'data' / 'prepare_data_nuscenes.py').read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', '') == 'GENERAL_TO_DETECTION'
                                                for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError('GENERAL_TO_DETECTION not found in prepare_data_nuscenes.py')


def test_nuscenes_prompt_is_the_reference_template(reference):
    templates = _json(reference, 'templates.json')
    assert templates[NUSCENES_PROMPT_KEY] == list(NUSCENES_EVAL_TEMPLATES) == list(NUSCENES.templates)


def test_class_ranges_are_the_cvpr_2019_config(reference):
    ranges = _json(reference, 'detection_cvpr_2019.json')['class_range']
    assert NUSCENES.ranges_m == {name: float(r) for name, r in ranges.items()}
    assert set(NUSCENES.classes) == set(ranges)


def test_difference_a_box_exactly_at_its_class_range_is_kept(reference):
    """Named difference: the devkit keeps `box.ego_dist < class_range` (strict); our Protocol.in_range
    is inclusive. Only a box at exactly 30, 40 or 50 m is affected (the devkit drops it, we keep it);
    anywhere else the two select the same boxes."""
    ranges = _json(reference, 'detection_cvpr_2019.json')['class_range']
    index = NUSCENES.class_indices(list(ranges))
    limit = np.array(list(ranges.values()), dtype=np.float64)
    for distance in (0.0 * limit, limit - 1e-9, limit + 1e-9, 2 * limit):
        assert (NUSCENES.in_range(index, distance) == (distance < limit)).all()
    assert NUSCENES.in_range(index, limit).all() and not (limit < limit).any()


def test_categories_map_to_the_reference_classes(reference):
    """The reference labels triplets with display names ('construction vehicle') and 'void'; ours maps
    to dataset names ('construction_vehicle') and '' for void, and embeds the display names."""
    ref = _general_to_detection(reference)
    ours = {cat: NUSCENES.classes[coarse_label(cat)] if coarse_label(cat) else 'void' for cat in ref}
    assert ours == ref
    assert set(NUSCENES_TO_DETECTION) == {cat for cat, cls in ref.items() if cls != 'void'}
    assert set(NUSCENES.class_names) == set(ref.values()) - {'void'}
