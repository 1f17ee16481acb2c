"""Vocabulary embeddings: template averaging, the on-disk cache, the portable text cache."""

import numpy as np
import pytest
import torch

from blendclip_core.text_space import (
    CachedTextSpace,
    OpenClipSpace,
    TextEmbeddingCache,
    TextEmbeddingCacheMiss,
    TextSpaceError,
    build_zero_shot_classifier,
)
from blendclip_core.vocabulary import (
    DEFAULT_TEMPLATES,
    DRIVING,
    NUSCENES_10,
    NUSCENES_10_NAMES,
    TRUCKSCENES_12,
    display_name,
    prompts,
    vocabulary_version,
)


def test_vocabularies_are_data():
    assert len(NUSCENES_10) == 10 and len(TRUCKSCENES_12) == 12
    assert NUSCENES_10_NAMES['construction_vehicle'] == 'construction vehicle'
    assert set(NUSCENES_10) < set(DRIVING) and {'kick scooter', 'stroller', 'dog'} < set(DRIVING)
    assert len(set(DRIVING)) == len(DRIVING)
    assert DEFAULT_TEMPLATES[0] == 'point cloud of a {}.'
    assert display_name('traffic_cone') == 'traffic cone' and display_name('other_vehicle') == 'other vehicle'
    spec = 'minilm:all-MiniLM-L6-v2'
    v = vocabulary_version(NUSCENES_10, DEFAULT_TEMPLATES, spec)
    assert len(v) == 12 and v == vocabulary_version(list(NUSCENES_10), DEFAULT_TEMPLATES, spec)
    assert v != vocabulary_version(NUSCENES_10[::-1], DEFAULT_TEMPLATES, spec)
    assert v != vocabulary_version(NUSCENES_10, DEFAULT_TEMPLATES[:1], spec)
    assert v != vocabulary_version(NUSCENES_10, DEFAULT_TEMPLATES, 'openclip:ViT-B-16:none')


def test_label_embedding_is_normalised_template_mean(minilm):
    labels = ['car', 'traffic cone']
    emb = build_zero_shot_classifier(minilm, labels, DEFAULT_TEMPLATES)
    assert emb.shape == (2, 384)
    for i, label in enumerate(labels):
        per_prompt = minilm.embed_texts(prompts(label, DEFAULT_TEMPLATES))
        want = torch.nn.functional.normalize(per_prompt.mean(0), dim=0)
        torch.testing.assert_close(emb[i], want)


def test_cache_hit_does_not_load_the_model(tiny_clip, tmp_path):
    labels = list(NUSCENES_10)
    first = OpenClipSpace(tiny_clip)
    emb = build_zero_shot_classifier(first, labels, DEFAULT_TEMPLATES, cache_dir=tmp_path)
    assert first.loads == 1 and len(list(tmp_path.glob('*.npz'))) == 10

    second = OpenClipSpace(tiny_clip)
    again = build_zero_shot_classifier(second, labels, DEFAULT_TEMPLATES, cache_dir=tmp_path)
    assert second.loads == 0  # every label came from disk
    torch.testing.assert_close(again, emb)

    grown = build_zero_shot_classifier(second, labels + ['kick scooter'], DEFAULT_TEMPLATES,
                                       cache_dir=tmp_path)
    assert second.loads == 1 and len(list(tmp_path.glob('*.npz'))) == 11
    torch.testing.assert_close(grown[:10], emb)

    # other templates are other keys: embedded, not served stale
    third = OpenClipSpace(tiny_clip)
    other = build_zero_shot_classifier(third, labels[:2], ['a photo of a {}.'], cache_dir=tmp_path)
    assert third.loads == 1 and not torch.allclose(other, emb[:2])


def test_corrupt_cache_file_is_ignored(tiny_clip, tmp_path):
    space = OpenClipSpace(tiny_clip)
    emb = build_zero_shot_classifier(space, ['car'], DEFAULT_TEMPLATES, cache_dir=tmp_path)
    (path,) = tmp_path.glob('*.npz')
    path.write_bytes(b'garbage')
    again = build_zero_shot_classifier(space, ['car'], DEFAULT_TEMPLATES, cache_dir=tmp_path)
    torch.testing.assert_close(again, emb)


def test_text_cache_round_trip_and_cache_only_space(tiny_clip, tmp_path):
    space = OpenClipSpace(tiny_clip)
    texts = [p for label in NUSCENES_10 for p in prompts(label, DEFAULT_TEMPLATES)]
    cache = TextEmbeddingCache.from_space(space, texts + texts[:3])
    assert len(cache) == len(texts)
    path = cache.save(tmp_path / 'texts.npz')
    loaded = TextEmbeddingCache.load(path)
    assert (loaded.spec, loaded.weights_id, loaded.dim) == (space.spec, space.weights_id, 64)
    torch.testing.assert_close(loaded.lookup(texts[::-1]), space.embed_texts(texts[::-1]))

    cached = CachedTextSpace(space.spec, loaded)
    from_cache = build_zero_shot_classifier(cached, NUSCENES_10, DEFAULT_TEMPLATES)
    torch.testing.assert_close(from_cache, build_zero_shot_classifier(space, NUSCENES_10, DEFAULT_TEMPLATES))
    with pytest.raises(TextEmbeddingCacheMiss, match="'point cloud of a dog.'"):
        build_zero_shot_classifier(cached, ['dog'], DEFAULT_TEMPLATES)

    created = []

    def fallback():
        created.append(OpenClipSpace(tiny_clip))
        return created[-1]

    lazy = CachedTextSpace(space.spec, TextEmbeddingCache.load(path), fallback=fallback)
    lazy.embed_texts(texts[:5])
    assert not created  # all hits: the real space was never built
    dog = lazy.embed_texts(['a dog'])
    assert len(created) == 1 and created[0].loads == 1
    torch.testing.assert_close(dog, space.embed_texts(['a dog']))
    assert 'a dog' in lazy.cache

    with pytest.raises(TextSpaceError):
        CachedTextSpace('minilm:all-MiniLM-L6-v2', loaded)
    other_weights = TextEmbeddingCache(space.spec, 'sha256:0123456789abcdef', 64)
    with pytest.raises(TextSpaceError, match='cannot extend'):  # never mix vectors of two weights
        CachedTextSpace(space.spec, other_weights, fallback=space).embed_texts(['a car'])
    with pytest.raises(ValueError):
        loaded.add(['x'], np.zeros((1, 3)))
    (tmp_path / 'bad.npz').write_bytes(b'nope')
    with pytest.raises(TextSpaceError):
        TextEmbeddingCache.load(tmp_path / 'bad.npz')


def test_embed_classes_method_matches_function(minilm):
    torch.testing.assert_close(minilm.embed_classes(['bus'], ['a {}']),
                               build_zero_shot_classifier(minilm, ['bus'], ['a {}']))


def test_driving_vocabulary_covers_the_generated_classes():
    from blendclip_core.synthetic.shapes import class_names

    assert set(class_names()) <= set(DRIVING)
