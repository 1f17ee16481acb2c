"""The pluggable Hugging Face paths with tiny random models built offline: an OWL-ViT directory as the
`hf:` proxy detector of a whole mining run, OWLv2 and Grounding DINO directories as that detector on a
camera image, and a BLIP-2 directory (OPT decoder, no chat template) as the `vlm:` captioner."""

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


def write_tiny_owl(path, family: str = 'OwlViT') -> None:
    """A random 1-layer OWL-ViT or OWLv2 (`family` 'OwlViT' / 'Owlv2'; 32 px images, 4 x 4 patches) with its
    processor, saved as a model directory.

    A CLIP tokenizer of single letters; its special tokens come last, as in CLIP (OWL-ViT masks queries whose
    first id is 0). The box and class heads are re-drawn small (std 0.02): at the default scale their outputs
    saturate, every box collapsing to a point and every score to ~0; small heads leave the boxes at the patch
    grid and the scores near 0.5, so detections pass the detector's threshold (0.1) and the lifting's 0.3.
    """
    import torch
    import transformers
    from transformers import CLIPTokenizer

    config_cls, model_cls, image_processor_cls, processor_cls = (
        getattr(transformers, family + part) for part in ('Config', 'ForObjectDetection', 'ImageProcessor',
                                                           'Processor'))
    tokens = list(LETTERS) + [c + '</w>' for c in LETTERS] + ['<|startoftext|>', '<|endoftext|>']
    vocab_file, merges_file = _write_bpe_files(path, tokens, [])
    tokenizer = CLIPTokenizer(vocab=vocab_file, merges=merges_file, model_max_length=32)
    side = {'height': 32, 'width': 32}
    image_processor = image_processor_cls(size=side, crop_size=side)  # OWLv2 pads instead of cropping
    config = config_cls(
        text_config={'vocab_size': len(tokens), 'hidden_size': 32, 'intermediate_size': 64,
                     'num_hidden_layers': 1, 'num_attention_heads': 2, 'max_position_embeddings': 32,
                     'bos_token_id': len(tokens) - 2, 'eos_token_id': len(tokens) - 1,
                     'pad_token_id': len(tokens) - 1},
        vision_config={'hidden_size': 32, 'intermediate_size': 64, 'num_hidden_layers': 1,
                       'num_attention_heads': 2, 'image_size': 32, 'patch_size': 8},
        projection_dim=32)  # the class head maps image features to the text width
    torch.manual_seed(0)
    model = model_cls(config)
    with torch.no_grad():
        for head in (model.box_head, model.class_head):
            for layer in head.modules():
                if isinstance(layer, torch.nn.Linear):
                    layer.weight.normal_(0.0, 0.02)
                    layer.bias.zero_()
    model.save_pretrained(path)
    processor_cls(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)


def write_tiny_grounding_dino(path) -> None:
    """A random Grounding DINO (a ResNet of 2 stages, 1-layer BERT, encoder and decoder, d_model 32,
    20 queries; images resized to 32-64 px) with its processor, saved as a model directory.

    The BERT vocab.txt is written by hand with the ids of bert-base-uncased's [CLS], [SEP], '.' and '?',
    which the model hard-codes to keep each text of the prompt 'car. truck.' attending only to itself.
    """
    import torch
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    path.mkdir(parents=True, exist_ok=True)
    tokens = [f'[unused{i}]' for i in range(1030)]
    for i, token in {0: '[PAD]', 100: '[UNK]', 101: '[CLS]', 102: '[SEP]', 103: '[MASK]', 1012: '.',
                     1029: '?'}.items():
        tokens[i] = token
    words = sorted({w for text in VOCABULARY for w in text.split()})
    tokens[104:104 + len(words)] = words
    (path / 'vocab.txt').write_text('\n'.join(tokens) + '\n')
    tokenizer = BertTokenizer(vocab=str(path / 'vocab.txt'))
    image_processor = GroundingDinoImageProcessor(size={'shortest_edge': 32, 'longest_edge': 64})
    config = GroundingDinoConfig(
        backbone_config={'model_type': 'resnet', 'embedding_size': 8, 'hidden_sizes': [16, 32],
                         'depths': [1, 1], 'out_features': ['stage1', 'stage2']},
        text_config={'vocab_size': len(tokens), 'hidden_size': 32, 'intermediate_size': 64,
                     'num_hidden_layers': 1, 'num_attention_heads': 2, 'max_position_embeddings': 64},
        d_model=32, encoder_layers=1, decoder_layers=1, encoder_ffn_dim=64, decoder_ffn_dim=64,
        encoder_attention_heads=2, decoder_attention_heads=2, num_queries=20, num_feature_levels=2,
        encoder_n_points=1, decoder_n_points=1, max_text_len=64, use_timm_backbone=False,
        decoder_bbox_embed_share=False)  # one decoder layer has no box head to share (tying it fails)
    torch.manual_seed(0)
    GroundingDinoForObjectDetection(config).save_pretrained(path)
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)


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
    write_tiny_owl(model)
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


@pytest.fixture(scope='module')
def front_camera(tmp_path_factory):
    """A generated key frame and its CAM_FRONT (800 x 450 px), read as the mining run reads them."""
    pytest.importorskip('nuscenes')
    from blendclip_core.datasets.nuscenes import NUSCENES

    root = tmp_path_factory.mktemp('root')
    make_nuscenes_dataroot(root, scenes=1, samples_per_scene=1, sweeps_per_sample=0)
    db = NUSCENES.open_db(root, 'v1.0-mini')
    frame = NUSCENES.read_frame(db, db.sample[0]['token'])
    return frame, next(c for c in frame.cameras if c.channel == 'CAM_FRONT')


def _check_detections(detections) -> None:
    assert detections, 'the random model found nothing'
    width, height = IMAGE_SIZE
    for d in detections:
        u0, v0, u1, v1 = d.box
        assert isinstance(d, Detection2D) and d.label in VOCABULARY
        assert np.isfinite(d.box).all() and 0 <= u0 < u1 <= width and 0 <= v0 < v1 <= height
        assert 0.0 <= d.score <= 1.0


def test_owlv2_boxes_are_in_the_image_frame(tmp_path, front_camera):
    """OWLv2 pads the image to a square (800 x 800 px) before resizing; its boxes come back in the image's
    pixels: the random model's boxes are the cells of a 4 x 4 grid over the padded square, 200 x 200 px
    (not 200 x 112 as if the grid covered the image), and the rows of cells that start in the padding
    (below 450 px) are dropped."""
    write_tiny_owl(tmp_path / 'owlv2', 'Owlv2')
    detections = TransformersDetector(str(tmp_path / 'owlv2'), VOCABULARY)(*front_camera)
    _check_detections(detections)
    width, height = IMAGE_SIZE
    unclipped = [d.box for d in detections if d.box[2] < width and d.box[3] < height]
    assert unclipped and all(np.allclose([u1 - u0, v1 - v0], 200, atol=2) for u0, v0, u1, v1 in unclipped)
    assert {round(d.box[1], -2) for d in detections} == {100, 300}
    assert any(d.box[3] == height for d in detections)  # the second row reached into the padding: clipped


def test_grounding_dino_labels_are_vocabulary_texts(tmp_path, front_camera):
    """Grounding DINO, prompted with 'car. truck. ... barrier.', scores the prompt's tokens; the detector
    labels each box with one vocabulary text (two-word texts included), where the processor's own
    post-processing gives the words of every token above a threshold. The boxes are the processor's; a score
    is the box's best text token's, at most the processor's (the best token of the prompt, '.' included)."""
    import torch
    from PIL import Image

    write_tiny_grounding_dino(tmp_path / 'gdino')
    detector = TransformersDetector(str(tmp_path / 'gdino'), VOCABULARY)
    detections = detector(*front_camera)
    _check_detections(detections)
    assert any(' ' in d.label for d in detections)

    with Image.open(front_camera[1].path) as image:
        inputs = detector.processor(text=[VOCABULARY], images=image.convert('RGB'), return_tensors='pt')
    with torch.inference_mode():
        outputs = detector.model(**inputs.to(detector.model.device))
    width, height = IMAGE_SIZE
    own = detector.processor.post_process_grounded_object_detection(
        outputs, threshold=detector.threshold, target_sizes=[(height, width)])[0]
    assert len(detections) == len(own['scores'])  # the threshold (0.1) kept the same boxes
    assert all(d.score <= score + 1e-6 for d, score in zip(detections, own['scores'].tolist()))
    clipped = own['boxes'].clamp(min=0).minimum(own['boxes'].new_tensor([width, height] * 2)).tolist()
    assert np.allclose([d.box for d in detections], clipped, atol=1e-3)


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
