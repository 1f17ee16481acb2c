"""blendclip-train: train a point encoder into a frozen CLIP space with the synthetic-to-real curriculum.

    blendclip-train --data synthetic --out runs/smoke                       # CPU smoke run, seconds
    blendclip-train --config training/configs/pointbert_s_nuscenes.yaml     # one GPU
    torchrun --nproc_per_node 8 -m training.train --config ...              # many GPUs / nodes
    blendclip-train --config ... --resume auto                              # continue the latest checkpoint

Everything else is in blendclip_core.train; this file only parses arguments into a TrainConfig.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from blendclip_core.checkpoint import CheckpointError
from blendclip_core.train import distributed
from blendclip_core.train.config import SYNTHETIC_DATA, ConfigError, load_config, to_dict
from blendclip_core.train.loop import NonFiniteLossError, Trainer

log = logging.getLogger('blendclip-train')


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog='blendclip-train', description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('--config', help='YAML training config (see docs/training.md)')
    p.add_argument('--data', choices=['config', 'synthetic'], default='config',
                   help="'synthetic': generated in-memory toy triplets (CPU smoke run) instead of the "
                        "config's sources")
    p.add_argument('--out', help='output directory (overrides output_dir)')
    p.add_argument('--resume', nargs='?', const='auto',
                   help="checkpoint to continue from, or 'auto' (the newest intact one in the output "
                        "directory; damaged newer ones are skipped and named)")
    p.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                   help='override a config value, e.g. --set optim.lr=5e-4 (repeatable; YAML values)')
    p.add_argument('--max-steps', type=int, help='stop after this many steps (overrides max_steps)')
    p.add_argument('--seed', type=int)
    p.add_argument('--device', help='auto | cpu | cuda')
    p.add_argument('--workers', type=int, help='DataLoader worker processes (data.num_workers)')
    p.add_argument('--print-config', action='store_true', help='print the resolved config and exit')
    p.add_argument('-v', '--verbose', action='store_true')
    return p.parse_args(argv)


def build_config(args: argparse.Namespace):
    overrides = list(args.overrides)
    for key, value in (('output_dir', args.out), ('max_steps', args.max_steps), ('seed', args.seed),
                       ('device', args.device), ('data.num_workers', args.workers)):
        if value is not None:
            overrides.append((key, value))
    if args.data == 'synthetic':
        preset = [(f'data.{k}', v) for k, v in SYNTHETIC_DATA.items()] + [('text_space.spec', 'toy')]
        overrides = preset + overrides
    return load_config(args.config, overrides)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rank = int(os.environ.get('RANK', '0'))
    level = logging.DEBUG if args.verbose else logging.INFO if rank == 0 else logging.WARNING
    logging.basicConfig(level=level, format=f'%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s')
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    try:
        cfg = build_config(args)
    except (ConfigError, OSError) as e:
        print(f'blendclip-train: config error: {e}', file=sys.stderr)
        return 2
    if args.print_config:
        import yaml

        print(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        return 0
    resume = args.resume
    if resume and resume != 'auto' and not os.path.isfile(resume):
        print(f'blendclip-train: checkpoint to resume from not found: {resume}', file=sys.stderr)
        return 2
    dist_info = distributed.init_distributed(cfg.device)
    try:
        try:
            trainer = Trainer(cfg, dist_info)
        except (ValueError, OSError) as e:  # bad sources, text space, model name: say which, no traceback
            print(f'blendclip-train: cannot set up training: {e}', file=sys.stderr)
            return 2
        summary = trainer.fit(resume=resume)
    except CheckpointError as e:  # damaged checkpoint(s): the message names them
        print(f'blendclip-train: cannot resume: {e}', file=sys.stderr)
        return 2
    except NonFiniteLossError as e:
        log.error('%s', e)
        return 3
    finally:
        distributed.cleanup()
    if dist_info.is_main:
        log.info('done: %d steps, final eval %s, outputs in %s', summary.get('steps', 0),
                 {k: round(v, 4) for k, v in summary.get('final_eval', {}).items()}, cfg.output_dir)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
