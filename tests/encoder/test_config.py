import pytest

from blendclip_core.encoder import EncoderConfig, PointEncoder, create_model, get_config, list_models


def test_list_and_create_by_name():
    names = list_models()
    assert {'pointbert-tiny', 'pointbert-mini', 'pointbert-s'} <= set(names)
    m = create_model('pointbert-tiny')
    assert isinstance(m, PointEncoder)
    assert m.config.name == 'pointbert-tiny' and m.embed_dim == 64 and m.in_channels == 3


def test_pointbert_s_matches_the_method():
    c = get_config('pointbert-s')
    assert (c.width, c.depth, c.num_heads, c.mlp_ratio, c.drop_path) == (384, 12, 6, 4.0, 0.1)
    assert (c.group_size, c.encoder_dim, c.max_points, c.max_patches) == (32, 256, 8192, 512)
    n_params = sum(p.numel() for p in create_model(c).parameters())
    assert 21e6 < n_params < 23.5e6  # 'about 22M' (method.md)


def test_overrides_and_config_object():
    m = create_model('pointbert-tiny', embed_dim=384, in_channels=4)
    assert m.embed_dim == 384 and m.in_channels == 4 and m.proj.out_features == 384
    cfg = EncoderConfig(name='x', width=32, depth=1, num_heads=2, embed_dim=16)
    assert create_model(cfg).config is cfg
    assert create_model(cfg, embed_dim=8).embed_dim == 8
    with pytest.raises(AttributeError):
        cfg.width = 64  # frozen


def test_bad_names_and_fields():
    with pytest.raises(ValueError, match='unknown encoder'):
        create_model('pointbert-xxl')
    with pytest.raises(ValueError, match='unknown encoder config keys'):
        create_model('pointbert-tiny', widht=3)
    with pytest.raises(ValueError, match='divisible'):
        EncoderConfig(width=10, num_heads=3)
    with pytest.raises(FileNotFoundError):
        create_model('/no/such/config.json')


def test_create_from_json_path(tmp_path):
    p = tmp_path / 'my-enc.json'
    p.write_text('{"width": 32, "depth": 1, "num_heads": 2, "embed_dim": 16}')
    m = create_model(str(p))
    assert m.config.name == 'my-enc' and m.config.width == 32


@pytest.mark.parametrize('n,k', [(0, 0), (1, 1), (3, 1), (31, 1), (32, 2), (48, 3), (1024, 64), (4000, 250),
                                 (8192, 512), (20000, 512)])
def test_dynamic_patch_count(n, k):
    assert get_config('pointbert-s').num_patches(n) == k
