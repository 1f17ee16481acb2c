"""blendclip-export: a checkpoint + a vocabulary -> a self-describing exported artefact for a vehicle.

  blendclip-export --checkpoint models/default/blendclip-default.pt --format onnx --out exported/onnx
  blendclip-export --format aoti --device cuda --vocabulary car truck pedestrian --out exported/aoti
The folder holds manifest.json (card, vocabulary, hashes), vocabulary.npz and encoder.onnx or
encoder.pt2; load it with blendclip_core.export.load_exported. See docs/deploy.md.
"""

from __future__ import annotations

import argparse
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    from blendclip_core.export.graph import OPSET

    p = argparse.ArgumentParser(prog='blendclip-export', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--checkpoint', default=None, help='a blendclip checkpoint (default: the shipped model)')
    p.add_argument('--format', required=True, choices=('aoti', 'onnx'),
                   help='aoti: torch.export + AOTInductor (.pt2); onnx: ONNX for ONNX Runtime / TensorRT')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--vocabulary', nargs='+', default=None, help='labels (default: the driving vocabulary)')
    p.add_argument('--templates', nargs='+', default=None, help="prompt templates (default: the card's)")
    p.add_argument('--device', default='cpu', help='where an AOTInductor package runs: cpu or cuda')
    p.add_argument('--opset', type=int, default=OPSET, help='ONNX opset (>= 18)')
    p.add_argument('--input-normalization', choices=('metric', 'unit_sphere'), default=None,
                   help="the encoder's input normalisation, for a checkpoint whose card does not record it "
                   '(recorded in the artefact and applied at load)')
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    from blendclip_core.checkpoint import CheckpointError
    from blendclip_core.export import ArtefactError, export_artefact
    from blendclip_core.text_space import TextSpaceError
    from blendclip_core.vocabulary import VocabularyError

    if args.opset < 18:
        print(f'blendclip-export: error: --opset must be >= 18, got {args.opset}', file=sys.stderr)
        return 2
    try:
        out = export_artefact(args.checkpoint, args.format, args.out, args.vocabulary, args.templates,
                              device=args.device, opset=args.opset,
                              input_normalization=args.input_normalization)
    except (ArtefactError, CheckpointError, TextSpaceError, VocabularyError, FileNotFoundError) as exc:
        print(f'blendclip-export: error: {exc}', file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
