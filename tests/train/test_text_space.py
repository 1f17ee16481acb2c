"""The trainer's evaluation vocabulary goes through the text-space registry: a file: space holding the
toy vectors evaluates exactly like the toy space, and the card records the space the file names."""

import numpy as np
from train_testutil import FAST

from blendclip_core.text_space.toy import class_embeddings
from blendclip_core.train.loop import Trainer
from blendclip_core.train.toy_data import SHAPES
from training.train import build_config, parse_args


def test_file_space_of_toy_vectors_equals_the_toy_space(tmp_path):
    path = tmp_path / 'classes.npz'
    names = list(SHAPES)
    np.savez(path, names=np.array(names), embeddings=class_embeddings(names, 32),
             spec=np.array('openclip:some-model:none'), weights_id=np.array('tag:x'))
    toy = Trainer(build_config(parse_args(FAST + ['--out', str(tmp_path / 'toy')])))
    filed = Trainer(build_config(parse_args(FAST + ['--out', str(tmp_path / 'file'),
                                                    '--set', f'text_space.spec=file:{path}'])))
    assert toy.vocabulary == filed.vocabulary
    np.testing.assert_allclose(filed.class_emb, toy.class_emb, atol=1e-6)
    assert toy.text_space.spec == 'toy' and filed.text_space.spec == 'openclip:some-model:none'
