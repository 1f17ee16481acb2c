"""Test-side readers for bag contents, independent of the code under test."""

from __future__ import annotations

import numpy as np


def cloud_dtype(fields, point_step: int, is_bigendian: bool = False) -> np.dtype:
    """Independent of the code under test: PointField list -> numpy dtype."""
    types = {1: 'i1', 2: 'u1', 3: 'i2', 4: 'u2', 5: 'i4', 6: 'u4', 7: 'f4', 8: 'f8'}
    order = '>' if is_bigendian else '<'
    return np.dtype({'names': [f.name for f in fields],
                     'formats': [order + types[f.datatype] for f in fields],
                     'offsets': [f.offset for f in fields], 'itemsize': point_step})


def cloud_array(msg) -> np.ndarray:
    return np.frombuffer(bytes(msg.data), dtype=cloud_dtype(msg.fields, msg.point_step, msg.is_bigendian),
                         count=msg.width * msg.height)


TINY_NAME = 'bags-tiny'
TINY_TEXT_SPACE = 'minilm:all-MiniLM-L6-v2'


def make_tiny_checkpoint(path, labels, templates, seed: int = 0):
    """A real (untrained) tiny PointBERT into the offline MiniLM space, with its text cache shipped
    beside it so processes that load it need no text model for these labels."""
    import torch

    from blendclip_core.checkpoint import ModelCard, save_checkpoint
    from blendclip_core.encoder import create_model
    from blendclip_core.text_space import MiniLMSpace, TextEmbeddingCache
    from blendclip_core.vocabulary import prompts

    torch.manual_seed(seed)
    encoder = create_model('pointbert-tiny', embed_dim=384)
    card = ModelCard(name=TINY_NAME, text_space=TINY_TEXT_SPACE, prompt_templates=list(templates))
    path = save_checkpoint(path, encoder, card)
    texts = [p for lab in labels for p in prompts(lab, templates)]
    TextEmbeddingCache.from_space(MiniLMSpace().load(), texts).save(path.with_suffix('.text_cache.npz'))
    return path


def copy_with_corrupt(src, dst, corrupt: dict, junk: bytes = b'\x00\x01\x00\x00\xff\xff\xff\xff') -> dict:
    """Copy bag `src` to `dst` (rosbags' own Writer, not ours), replacing the raw bytes of message
    number i of topic T by `junk` for each T: [i, ...] in `corrupt` (default: a CDR header and a
    sequence length no buffer holds). -> {topic: [log time of each replaced message]}."""
    from pathlib import Path

    from rosbags.highlevel import AnyReader
    from rosbags.rosbag2 import StoragePlugin, Writer

    replaced: dict = {}
    seen: dict = {}
    with AnyReader([Path(src)]) as reader:
        writer = Writer(Path(dst), version=9, storage_plugin=StoragePlugin.MCAP)
        with writer:
            conns = {}
            for conn, t, raw in reader.messages():
                if conn.topic not in conns:
                    conns[conn.topic] = writer.add_connection(
                        conn.topic, conn.msgtype, msgdef=conn.msgdef.data, rihs01=conn.digest,
                        offered_qos_profiles=conn.ext.offered_qos_profiles)
                i = seen.get(conn.topic, 0)
                seen[conn.topic] = i + 1
                if i in corrupt.get(conn.topic, ()):
                    raw = junk
                    replaced.setdefault(conn.topic, []).append(t)
                writer.write(conns[conn.topic], t, raw)
    return replaced
