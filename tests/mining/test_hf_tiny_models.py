"""The pluggable Hugging Face paths with tiny random models built offline: an OWL-ViT directory as the
`hf:` proxy detector of a whole mining run, and a BLIP-2 directory (OPT decoder, no chat template) as the
`vlm:` captioner."""

import io
import json

import numpy as np
import pytest
from helpers.nuscenes_dataroot import make_nuscenes_dataroot

from blendclip_core.data.datasets import TripletDataset
from blendclip_core.mining.captioners import CaptionInput, VLMCaptioner, VLMConfig
from blendclip_core.mining.proxy import Detection2D, TransformersDetector
from training.mine import main as mine_main

pytest.importorskip('transformers', reason='the Hugging Face paths need transformers')
pytestmark = pytest.mark.timeout(120)

LETTERS = 'abcdefghijklmnopqrstuvwxyz'
VOCABULARY = ['car', 'truck', 'bus', 'trailer', 'construction vehicle', 'pedestrian', 'motorcycle', 'bicycle',
              'traffic cone', 'barrier']  # the CLI's default --proxy-vocabulary
IMAGE_SIZE = (800, 450)  # the generated camera images (make_nuscenes_dataroot's default)


def _write_bpe_files(path, tokens: list[str], merges: list[str]) -> tuple[str, str]:
    """A hand-written vocab.json / merges.txt pair, as a real checkpoint ships them."""
    path.mkdir(parents=True, exist_ok=True)
    (path / 'vocab.json').write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (path / 'merges.txt').write_text('\n'.join(['#version: 0.2', *merges]) + '\n')
    return str(path / 'vocab.json'), str(path / 'merges.txt')


def write_tiny_owlvit(path) -> None:
    """A random 1-layer OWL-ViT (32 px images, 4 x 4 patches) with its processor, saved as a model directory.

    A CLIP tokenizer of single letters; its special tokens come last, as in CLIP (OWL-ViT masks queries whose
    first id is 0). The box and class heads are re-drawn small (std 0.02): at the default scale their outputs
    saturate, every box collapsing to a point and every score to ~0; small heads leave the boxes at the patch
    grid and the scores near 0.5, so detections pass the detector's threshold (0.1) and the lifting's 0.3.
    """
    import torch
    from transformers import (
        CLIPTokenizer,
        OwlViTConfig,
        OwlViTForObjectDetection,
        OwlViTImageProcessor,
        OwlViTProcessor,
    )

    tokens = list(LETTERS) + [c + '</w>' for c in LETTERS] + ['<|startoftext|>', '<|endoftext|>']
    vocab_file, merges_file = _write_bpe_files(path, tokens, [])
    tokenizer = CLIPTokenizer(vocab=vocab_file, merges=merges_file, model_max_length=32)
    side = {'height': 32, 'width': 32}
    image_processor = OwlViTImageProcessor(size=side, crop_size=side)
    config = OwlViTConfig(
        text_config={'vocab_size': len(tokens), 'hidden_size': 32, 'intermediate_size': 64,
                     'num_hidden_layers': 1, 'num_attention_heads': 2, 'max_position_embeddings': 32,
                     'bos_token_id': len(tokens) - 2, 'eos_token_id': len(tokens) - 1,
                     'pad_token_id': len(tokens) - 1},
        vision_config={'hidden_size': 32, 'intermediate_size': 64, 'num_hidden_layers': 1,
                       'num_attention_heads': 2, 'image_size': 32, 'patch_size': 8},
        projection_dim=32)  # the class head maps image features to the text width
    torch.manual_seed(0)
    model = OwlViTForObjectDetection(config)
    with torch.no_grad():
        for head in (model.box_head, model.class_head):
            for layer in head.modules():
                if isinstance(layer, torch.nn.Linear):
                    layer.weight.normal_(0.0, 0.02)
                    layer.bias.zero_()
    model.save_pretrained(path)
    OwlViTProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)


def write_tiny_blip2(path) -> None:
    """A random BLIP-2 (1-layer ViT, Q-Former and OPT; 4 query tokens) with its processor (no chat template),
    saved as a model directory. A byte-level GPT-2 tokenizer of letters and space-letters."""
    import torch
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessor,
        GPT2Tokenizer,
    )

    space = '\u0120'  # byte-level BPE's space
    tokens = ['</s>', '<pad>', space] + list(LETTERS + LETTERS.upper()) + [space + c for c in LETTERS]
    vocab_file, merges_file = _write_bpe_files(path, tokens, [f'{space} {c}' for c in LETTERS])
    tokenizer = GPT2Tokenizer(vocab=vocab_file, merges=merges_file, unk_token='</s>', bos_token='</s>',
                              eos_token='</s>', pad_token='<pad>')
    processor = Blip2Processor(image_processor=BlipImageProcessor(size={'height': 32, 'width': 32}),
                               tokenizer=tokenizer, num_query_tokens=4)  # adds the <image> token
    config = Blip2Config(
        vision_config={'hidden_size': 32, 'intermediate_size': 64, 'num_hidden_layers': 1,
                       'num_attention_heads': 2, 'image_size': 32, 'patch_size': 8},
        qformer_config={'vocab_size': 32, 'hidden_size': 32, 'intermediate_size': 64, 'num_hidden_layers': 1,
                        'num_attention_heads': 2, 'encoder_hidden_size': 32, 'max_position_embeddings': 32},
        text_config={'model_type': 'opt', 'vocab_size': len(tokenizer), 'hidden_size': 32, 'ffn_dim': 64,
                     'num_hidden_layers': 1, 'num_attention_heads': 2, 'word_embed_proj_dim': 32,
                     'max_position_embeddings': 128, 'bos_token_id': 0, 'eos_token_id': 0, 'pad_token_id': 1},
        num_query_tokens=4, image_token_index=tokenizer.convert_tokens_to_ids('<image>'))
    torch.manual_seed(0)
    Blip2ForConditionalGeneration(config).save_pretrained(path)
    processor.save_pretrained(path)


def test_owlvit_detector_mines_proxies(tmp_path, monkeypatch):
    pytest.importorskip('nuscenes')
    model = tmp_path / 'owlvit'
    write_tiny_owlvit(model)
    make_nuscenes_dataroot(tmp_path / 'root', scenes=1, samples_per_scene=2, sweeps_per_sample=0)
    seen: list[tuple[str, list[Detection2D]]] = []
    detect = TransformersDetector.__call__

    def recording(self, frame, camera):
        detections = detect(self, frame, camera)
        seen.append((camera.channel, detections))
        return detections

    monkeypatch.setattr(TransformersDetector, '__call__', recording)
    out = tmp_path / 'proxy'
    assert mine_main(['--dataroot', str(tmp_path / 'root'), '--split', 'all', '--sweeps', '1',
                      '--out', str(out), '--proxy', f'hf:{model}', '--no-progress']) == 0

    assert len(seen) == 4  # 2 key frames x CAM_FRONT, CAM_BACK
    detections = [d for _, dets in seen for d in dets]
    assert detections, 'the random model passed no detection to the lifting'
    width, height = IMAGE_SIZE
    for d in detections:
        u0, v0, u1, v1 = d.box
        assert d.label in VOCABULARY
        assert np.isfinite(d.box).all() and 0 <= u0 < u1 <= width and 0 <= v0 < v1 <= height
        assert 0.0 <= d.score <= 1.0
    assert any(d.box[2] == width for d in detections)  # the grid's last column reached past the edge: clipped
    index = json.loads((out / 'index.json').read_text())
    proxies = list(TripletDataset(out))
    dropped = sum(index['skipped'].get(k, 0) for k in ('proxy_not_lifted', 'too_few_points'))
    assert proxies or dropped, index['skipped']
    lifted = [d for d in detections if d.score >= 0.3]
    assert len(proxies) + dropped <= len(lifted)  # two-camera NMS may merge some
    for p in proxies:
        assert p.label in VOCABULARY and p.meta['proxy']['detector'] == f'hf:{model}'
        assert p.meta['proxy']['score'] >= 0.3 and len(p.points) >= 5


def _jpeg(value: int, height: int, width: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(buf, format='JPEG')
    return buf.getvalue()


def test_blip2_captions_the_crops(tmp_path):
    model = tmp_path / 'blip2'
    write_tiny_blip2(model)
    captioner = VLMCaptioner.load(VLMConfig(model_dir=str(model), max_new_tokens=6, device='cpu'))
    objects = [CaptionInput('vehicle.car', ('vehicle.parked',), (4.5, 1.9, 1.6), _jpeg(40, 60, 90)),
               CaptionInput('human.pedestrian.adult', size_lwh=(0.7, 0.6, 1.8)),
               CaptionInput('vehicle.truck', image=_jpeg(200, 90, 20))]
    captions = captioner(objects)
    assert len(captions) == len(objects)
    for obj, caption in zip(objects, captions):
        assert isinstance(caption, str) and caption.strip()
        if obj.image:  # the model continued the prompt (no chat template: the prompt beside the image)
            assert caption.startswith('A photo of ') and len(caption) > len('A photo of ')
        else:
            assert caption == 'a pedestrian, about 1.8 m tall'
