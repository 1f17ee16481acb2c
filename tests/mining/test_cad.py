"""CAD sources: ULIP-2 / OpenShape-style folders (generated here) and the mesh sampler on real meshes."""

import json

import numpy as np
import pytest

from blendclip_core.data.datasets import mesh_source, openshape_source, ulip_objaverse_source
from blendclip_core.data.triplet import SYNTHETIC
from blendclip_core.mining.cad import CadLayoutError, MeshSampler, sample_surface, y_up_to_z_up


def _unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def test_ulip_folder(tmp_path):
    rng = np.random.default_rng(0)
    pts = {u: rng.normal(size=(50 + i, 6)).astype(np.float32) for i, u in enumerate(['a', 'b', 'c'])}
    np.save(tmp_path / 'a.npy', pts['a'])
    np.savez(tmp_path / 'b.npz', xyz=pts['b'][:, :3])
    (tmp_path / 'c').mkdir()
    np.savez(tmp_path / 'c' / 'c_8192.npz', pts['c'])  # stored as arr_0
    (tmp_path / 'captions.json').write_text(json.dumps({'a': ['a red chair', 'a chair'], 'b': 'a lamp'}))
    (tmp_path / 'labels.json').write_text(json.dumps({'a': 'chair', 'c': 'traffic cone'}))
    text, image = rng.normal(size=(2, 8)), rng.normal(size=(2, 8))
    np.savez(tmp_path / 'embeddings.npz', uids=np.array(['b', 'a']), text=text, image=image)
    ds = ulip_objaverse_source(str(tmp_path))
    assert len(ds) == 3 and ds.labels == ['chair', '', 'traffic cone']
    a, b, c = ds[0], ds[1], ds[2]
    assert all(t.domain == SYNTHETIC and t.label_coarse == '' for t in (a, b, c))
    np.testing.assert_array_equal(a.points, pts['a'][:, :3])
    np.testing.assert_array_equal(c.points, pts['c'][:, :3])
    assert (a.caption, b.caption, c.caption) == ('a red chair', 'a lamp', 'a 3D model of a traffic cone')
    np.testing.assert_allclose(a.text_embedding, _unit(text[1]), atol=1e-6)
    np.testing.assert_allclose(b.image_embedding, _unit(image[0]), atol=1e-6)
    assert c.text_embedding is None and a.meta['captions'] == ['a red chair', 'a chair']
    y_up = ulip_objaverse_source(str(tmp_path), y_up=True, max_points=20)
    assert len(y_up[0].points) == 20
    np.testing.assert_array_equal(y_up_to_z_up(np.array([[1.0, 2.0, 3.0]])), [[1.0, -3.0, 2.0]])
    np.savez(tmp_path / 'd.npz', nothing=np.zeros(3))
    with pytest.raises(CadLayoutError, match='no points'):
        ulip_objaverse_source(str(tmp_path))[3]
    with pytest.raises(CadLayoutError):
        ulip_objaverse_source(str(tmp_path / 'missing'))


def test_openshape_folder(tmp_path):
    rng = np.random.default_rng(1)
    d = 16
    feats = {k: rng.normal(size=d).astype(np.float32) for k in ('text', 'blip', 'msft', 'thumb')}
    image_feat = rng.normal(size=(12, d)).astype(np.float32)
    xyz = rng.normal(size=(100, 3)).astype(np.float32)
    objaverse = {'xyz': xyz, 'rgb': np.full((100, 3), 0.4), 'text': ['a wooden table'],
                 'text_feat': [{'original': feats['text'][None], 'prompt_avg': feats['msft'][None]}],
                 'blip_caption': 'a table with four legs', 'blip_caption_feat': {'original': feats['blip']},
                 'msft_caption': '', 'msft_caption_feat': {}, 'image_feat': image_feat,
                 'thumbnail_feat': feats['thumb']}
    other = {'xyz': xyz[:10], 'rgb': np.zeros((10, 3)), 'text': [], 'text_feat': [], 'blip_caption': '',
             'msft_caption': 'a mug', 'msft_caption_feat': {'original': feats['msft']},
             'image_feat': image_feat}
    (tmp_path / 'objs').mkdir()
    np.save(tmp_path / 'objs' / 'u1.npy', objaverse, allow_pickle=True)
    np.save(tmp_path / 'objs' / 'u2.npy', other, allow_pickle=True)
    split = [{'id': 'u1', 'data_path': 'objs/u1.npy', 'dataset': 'Objaverse', 'group': 'g',
              'category': 'table'},
             {'id': 'u2', 'data_path': str(tmp_path / 'objs' / 'u2.npy'), 'dataset': 'ABO', 'group': 'g'}]
    (tmp_path / 'train.json').write_text(json.dumps(split))
    ds = openshape_source(str(tmp_path), split='train.json')
    assert len(ds) == 2 and ds.labels == ['table', '']
    t1, t2 = ds[0], ds[1]
    np.testing.assert_allclose(t1.points, y_up_to_z_up(xyz))
    assert t1.caption == 'a wooden table'
    assert t1.meta['captions'] == ['a wooden table', 'a table with four legs']
    mean = _unit(_unit(feats['text']) + _unit(feats['blip']))
    np.testing.assert_allclose(t1.text_embedding, mean, atol=1e-6)
    np.testing.assert_allclose(t1.image_embedding, _unit(feats['thumb']), atol=1e-6)
    assert t2.caption == 'a mug'
    np.testing.assert_allclose(t2.image_embedding, _unit(image_feat.mean(0)), atol=1e-6)
    assert len(openshape_source(str(tmp_path))) == 2  # no split file: every .npy
    assert openshape_source(str(tmp_path), embed_version='prompt_avg')[0].text_embedding is not None
    with pytest.raises(CadLayoutError, match='split'):
        openshape_source(str(tmp_path), split='val.json')


def test_area_weighted_surface_sampling():
    # two triangles in the plane z=0 with areas 0.5 and 4.5
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [10, 0, 0], [13, 0, 0], [10, 3, 0]], float)
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    pts = sample_surface(vertices, faces, 20000, seed=3)
    small = (pts[:, 0] < 5).mean()
    assert small == pytest.approx(0.1, abs=0.01)
    inside_small = pts[pts[:, 0] < 5]
    assert (inside_small[:, 0] + inside_small[:, 1] <= 1 + 1e-6).all() and (inside_small >= -1e-6).all()
    np.testing.assert_array_equal(pts, sample_surface(vertices, faces, 20000, seed=3))
    assert not np.array_equal(pts, sample_surface(vertices, faces, 20000, seed=4))
    with pytest.raises(CadLayoutError):
        sample_surface(vertices, np.array([[0, 0, 0]]), 10, seed=0)


def _on_surface(points, vertices, faces, tol):
    """Each point within tol of some triangle's plane with its projection inside that triangle."""
    tri = np.asarray(vertices, np.float64)[faces]
    a, e1, e2 = tri[:, 0], tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    normal = np.cross(e1, e2)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    v = points.astype(np.float64)[:, None, :] - a[None]
    plane = np.abs((v * normal).sum(-1))
    d00, d01, d11 = (e1 * e1).sum(-1), (e1 * e2).sum(-1), (e2 * e2).sum(-1)
    d20, d21 = (v * e1).sum(-1), (v * e2).sum(-1)
    den = d00 * d11 - d01 * d01
    b1, b2 = (d11 * d20 - d01 * d21) / den, (d00 * d21 - d01 * d20) / den
    inside = (b1 >= -1e-4) & (b2 >= -1e-4) & (b1 + b2 <= 1 + 1e-4)
    return (inside & (plane < tol)).any(1)


def test_mesh_sampler_on_shared_meshes(shared_data):
    import trimesh

    folder = shared_data / 'cad'
    ds = mesh_source(str(folder), points=2048, seed=7)
    assert len(ds) == 4
    by_key = {ds[i].key: ds[i] for i in range(len(ds))}
    truck = by_key['CesiumMilkTruck']
    assert truck.caption == 'a 3D model of a cesium milk truck' and truck.domain == SYNTHETIC
    assert truck.points.shape == (2048, 3) and truck.points.dtype == np.float32
    ext = truck.points.max(0) - truck.points.min(0)
    assert ext[2] == pytest.approx(2.58, abs=0.05) and ext[0] > ext[2]  # glTF y-up turned z-up
    teapot = by_key['teapot']
    mesh = trimesh.load(folder / 'teapot.stl', force='mesh')
    assert _on_surface(teapot.points[:300], mesh.vertices, mesh.faces, tol=1e-4 * mesh.scale).all()
    again = MeshSampler([folder / 'teapot.stl'], points=2048, seed=7)[0]
    np.testing.assert_array_equal(again.points, teapot.points)  # seeded per object, not per position
    other_seed = MeshSampler([folder / 'teapot.stl'], points=2048, seed=8)[0]
    assert not np.array_equal(other_seed.points, teapot.points)
    normed = MeshSampler([folder / 'Duck.glb'], points=500, normalize=True, labels={'Duck': 'rubber duck'})
    duck = normed[0]
    assert duck.caption == 'a 3D model of a rubber duck' and duck.label == 'rubber duck'
    assert np.linalg.norm(duck.points, axis=1).max() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(CadLayoutError):
        MeshSampler(folder / 'nope')
