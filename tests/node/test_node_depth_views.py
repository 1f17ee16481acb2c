"""The node in its own process with `classifier:=depth_views` (CLIP2Point: OpenCLIP's image tower on
depth renders, here a randomly initialised ViT-S-32 built offline), labelling the real sweep over rclpy."""

from __future__ import annotations

import rclpy
from node_harness import TEST_VOCABULARY, NodeClient, load_sample, sample_cloud, write_params
from test_node_integration import START_TIMEOUT, running_node

from blendclip_core.types import ObjectStatus

DEPTH_SPACE = 'openclip:ViT-S-32:none'  # a small built-in architecture, random weights: no download


def test_node_labels_every_box_with_the_depth_view_classifier(tiny_checkpoint, tmp_path):
    params = write_params(tmp_path / 'params.yaml', tiny_checkpoint, classifier='depth_views',
                          text_space=DEPTH_SPACE)
    points, boxes, ann = load_sample()
    with running_node(params, tmp_path / 'node.log'):
        context = rclpy.Context()
        rclpy.init(context=context)
        client = NodeClient(context)
        try:
            assert client.wait_active(START_TIMEOUT), (tmp_path / 'node.log').read_text()[-3000:]
            labels = client.frame(sample_cloud(points), boxes, stamp=client.next_stamp(), timeout=120.0)
        finally:
            client.close()
            rclpy.shutdown(context=context)
    assert labels is not None and [o.id for o in labels.objects] == list(boxes.ids)
    assert labels.model == f'depth-views:{DEPTH_SPACE}'
    recount = [o['points_in_box_recount'] for o in ann['objects']]
    ok = [o for o in labels.objects if o.status == ObjectStatus.OK]
    assert len(ok) == sum(n >= 5 for n in recount) > 10
    assert all(o.label in TEST_VOCABULARY and 0 < o.score <= 1 for o in ok)
