"""blendclip-embed: frozen CLIP text / image embeddings of mined triplets, stored next to the shards.

  blendclip-embed --shards shards/train --space openclip:ViT-B-16:/models/open_clip_model.safetensors
Resumable: shards already embedded with the same weights are skipped. See docs/mining.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='blendclip-embed', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--shards', required=True, help='a blendclip-mine output directory')
    p.add_argument('--space', default='openclip:ViT-B-16:datacomp_xl_s13b_b90k',
                   help='text space spec: openclip:<model>:<pretrained tag or weights file>')
    p.add_argument('--device', default='auto', help="'auto' (GPU when present), 'cpu', 'cuda:0', ...")
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--model-config', action='append', default=[],
                   help='extra OpenCLIP model config JSON (open_clip.add_model_config), repeatable')
    p.add_argument('--no-progress', action='store_true')
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    from blendclip_core.data.shards import ShardError
    from blendclip_core.mining.embed import embed_shards
    from blendclip_core.text_space import TextSpaceError, create_text_space

    try:
        if args.model_config:
            import open_clip

            for path in args.model_config:
                open_clip.add_model_config(path)
        space = create_text_space(args.space, device=args.device)
        summary = embed_shards(args.shards, space, batch_size=args.batch_size, progress=not args.no_progress)
    except (ShardError, TextSpaceError, FileNotFoundError) as exc:
        print(f'blendclip-embed: error: {exc}', file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
