"""Gemma-3 captions through the miner (a tiny random model built offline), a user's captioner plugged in
by `module:factory` or an entry point, and a failing captioner leaving its scene for the rerun."""

import json
import textwrap

import pytest
from helpers.nuscenes_dataroot import make_nuscenes_dataroot

from blendclip_core.data.datasets import TripletDataset
from blendclip_core.mining.captioners import CaptionInput, create_captioner
from blendclip_core.mining.objects import MineConfig
from blendclip_core.mining.run import PROGRESS_DIR, RunConfig, run_mining
from training.mine import main

pytest.importorskip('nuscenes')
transformers = pytest.importorskip('transformers')

SPECIAL = ['<pad>', '<eos>', '<bos>', '<unk>', '<mask>', '<start_of_image>', '<end_of_image>',
           '<image_soft_token>', '<start_of_turn>', '<end_of_turn>']
CHAT = ("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}<start_of_image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
        "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")


def write_tiny_gemma3(path) -> None:
    """A random 2-layer Gemma-3 (vision tower, projector, chat template) saved as a model directory."""
    import torch
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
    )
    from transformers.models.gemma.tokenization_gemma import GemmaTokenizer

    vocab = {w: i for i, w in enumerate(SPECIAL + list('abcdefghijklmnopqrstuvwxyz\u2581\n'))}
    tokenizer = GemmaTokenizer(vocab=vocab, extra_special_tokens={
        'boi_token': '<start_of_image>', 'eoi_token': '<end_of_image>', 'image_token': '<image_soft_token>'})
    processor = Gemma3Processor(image_processor=Gemma3ImageProcessor(size={'height': 32, 'width': 32}),
                                tokenizer=tokenizer, image_seq_length=4, chat_template=CHAT)
    config = Gemma3Config(
        text_config={'vocab_size': len(vocab), 'hidden_size': 32, 'intermediate_size': 64,
                     'num_hidden_layers': 2, 'num_attention_heads': 2, 'num_key_value_heads': 1,
                     'head_dim': 16, 'sliding_window': 16, 'max_position_embeddings': 256},
        vision_config={'hidden_size': 32, 'intermediate_size': 64, 'num_hidden_layers': 1,
                       'num_attention_heads': 2, 'image_size': 32, 'patch_size': 8},
        mm_tokens_per_image=4, boi_token_index=5, eoi_token_index=6, image_token_index=7)
    torch.manual_seed(0)
    Gemma3ForConditionalGeneration(config).save_pretrained(path)
    processor.save_pretrained(path)


@pytest.fixture(scope='module')
def dataroot(tmp_path_factory):
    root = tmp_path_factory.mktemp('nusc')
    make_nuscenes_dataroot(root, scenes=2, samples_per_scene=1, sweeps_per_sample=0, ground_points=500)
    return root


def test_gemma3_captions_the_crops(tmp_path, dataroot):
    model = tmp_path / 'gemma3'
    write_tiny_gemma3(model)
    out = tmp_path / 'out'
    cfg = RunConfig(str(dataroot), 'v1.0-mini', 'scene-0001', str(out),
                    MineConfig(sweeps=1, min_visibility=1, captioner=f'vlm:{model}'))
    index = run_mining(cfg, progress=False)
    assert not [k for k in index['skipped'] if k.startswith('error_')], index['skipped']
    triplets = list(TripletDataset(out))
    with_crop = [t for t in triplets if t.image is not None]
    assert with_crop and len(with_crop) < len(triplets)
    for t in triplets:
        if t.image is not None:  # the VLM continued the prompt
            assert t.caption.startswith('A photo of ') and len(t.caption) > len('A photo of ')
        else:  # no crop: the template
            assert t.caption.startswith(('a ', 'an '))


def _plugin(tmp_path, monkeypatch, name: str, body: str) -> str:
    (tmp_path / f'{name}.py').write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    return f'{name}:make'


PLUGIN = """
import os

def make():
    def caption(objects):
        if os.environ.get('PLUGIN_FAIL') == 'raise':
            raise ValueError('out of GPU memory')
        if os.environ.get('PLUGIN_FAIL') == 'short':
            return ['one caption'][:len(objects) - 1]
        return [f'plugged {o.category}' for o in objects]
    return caption
"""


@pytest.mark.parametrize('mode, message', [('raise', 'ValueError: out of GPU memory'),
                                           ('short', 'captions for')])
def test_captioner_failure_leaves_the_scene_for_the_rerun(tmp_path, dataroot, monkeypatch, capsys, mode,
                                                          message):
    spec = _plugin(tmp_path, monkeypatch, f'my_captioner_{mode}', PLUGIN)
    out = tmp_path / 'out'
    args = ['--dataroot', str(dataroot), '--split', 'all', '--sweeps', '1', '--out', str(out),
            '--captioner', spec, '--no-progress']
    monkeypatch.setenv('PLUGIN_FAIL', mode)
    assert main(args) == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out[:captured.out.rindex('}') + 1])
    assert sorted(summary['failed_scenes']) == ['scene-0001', 'scene-0002']
    assert all('CaptionFailure' in v and message in v for v in summary['failed_scenes'].values())
    assert 'scene-0001' in captured.err and not list((out / PROGRESS_DIR).glob('*.json'))
    assert summary['num_samples'] == 0

    monkeypatch.delenv('PLUGIN_FAIL')
    assert main(args) == 0  # the rerun redoes both scenes
    captions = {t.caption for t in TripletDataset(out)}
    assert captions and all(c.startswith('plugged ') for c in captions)


def test_entry_point_captioner(tmp_path, monkeypatch):
    _plugin(tmp_path, monkeypatch, 'ep_captioner', PLUGIN)
    info = tmp_path / 'ep_captioner-1.0.dist-info'
    info.mkdir()
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: ep-captioner\nVersion: 1.0\n')
    (info / 'entry_points.txt').write_text('[blendclip.captioners]\nmine = ep_captioner:make\n')
    assert create_captioner('mine')([CaptionInput('vehicle.car')]) == ['plugged vehicle.car']
