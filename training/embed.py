"""blendclip-embed: frozen CLIP text / image embeddings of mined shards or a CAD folder, stored beside them.

  blendclip-embed --shards shards/train --space openclip:ViT-B-16:/models/open_clip_model.safetensors
  blendclip-embed --cad cad/meshes --layout mesh --space minilm:all-MiniLM-L6-v2
  blendclip-embed --cad cad/meshes --space file:class_embeddings.npz --text label --out runs/cad-emb
Resumable: shards or objects already embedded with the same weights are skipped. See docs/mining.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from blendclip_core.mining.cad import CAD_LAYOUTS
from blendclip_core.mining.embed import TEXT_FROM
from blendclip_core.train.config import TextSpaceConfig, parse_override


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='blendclip-embed', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument('--shards', help='a blendclip-mine output directory')
    what.add_argument('--cad', help='a CAD folder (meshes, ULIP-2 or OpenShape layout: --layout)')
    p.add_argument('--space', default='openclip:ViT-B-16:datacomp_xl_s13b_b90k',
                   help='text space spec: openclip:<model>:<pretrained tag or weights file>, '
                        'minilm:all-MiniLM-L6-v2, file:<class embeddings.npz> (with --text label), toy')
    p.add_argument('--device', default='auto', help="'auto' (GPU when present), 'cpu', 'cuda:0', ...")
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--dim', type=int, help='width of a space whose width is free (toy): the encoder output')
    p.add_argument('--model-config', action='append', default=[],
                   help='extra OpenCLIP model config JSON (open_clip.add_model_config), repeatable')
    cad = p.add_argument_group('CAD folders (--cad)')
    cad.add_argument('--layout', choices=sorted(CAD_LAYOUTS), default='mesh')
    cad.add_argument('--reader-arg', action='append', default=[], metavar='KEY=VALUE',
                     help="the reader's keyword argument, YAML value (e.g. 'labels={Duck: rubber duck}', "
                          'split=train.json); the same as the training source, repeatable')
    cad.add_argument('--text', choices=TEXT_FROM, default='caption',
                     help="embed each object's caption, or its label as the class vector of --template")
    cad.add_argument('--template', action='append', dest='templates',
                     help="prompt template of --text label, repeatable (default: the trainer's, "
                          f'{list(TextSpaceConfig().templates)})')
    cad.add_argument('--out', help='write <out>/embeddings/ instead of <cad folder>/embeddings/')
    p.add_argument('--no-progress', action='store_true')
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.shards and (args.out or args.reader_arg or args.text != 'caption' or args.templates):
        parser.error('--out, --reader-arg, --text and --template are for --cad')
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    from blendclip_core.data.shards import ShardError
    from blendclip_core.mining.cad import embed_cad
    from blendclip_core.mining.embed import embed_shards
    from blendclip_core.text_space import TextSpaceError, create_text_space
    from blendclip_core.train.config import ConfigError

    try:
        if args.model_config:
            import open_clip

            for path in args.model_config:
                open_clip.add_model_config(path)
        space = create_text_space(args.space, device=args.device, dim=args.dim)
        if args.shards:
            summary = embed_shards(args.shards, space, batch_size=args.batch_size,
                                   progress=not args.no_progress)
        else:
            reader_args = dict(parse_override(a) for a in args.reader_arg)
            summary = embed_cad(args.cad, space, args.layout, args.out, args.text,
                                args.templates or TextSpaceConfig().templates, args.batch_size,
                                not args.no_progress, **reader_args)
    except (ShardError, TextSpaceError, ConfigError, ValueError, TypeError, FileNotFoundError) as exc:
        print(f'blendclip-embed: error: {exc}', file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
