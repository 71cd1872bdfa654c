"""`budgetnas profile`: params (dense, non-zero), MACs and latency of an architecture.

    budgetnas profile ARCH.json [--latency] [--device cpu] [--json]
    budgetnas profile --space nb201 --genotype '|nor_conv_3x3~0|+|...|' [--dataset cifar10]
    budgetnas profile --space mbconv --sample 200 --out table.csv [--backend onnxruntime]
        [--dataset digits | --image-size 64]

With --space, the input shape and classes come from --dataset (channels, image size, classes) and
--image-size overrides the image size.
"""
from __future__ import annotations

import argparse
import json
import sys

from ..config import DATASET_SHAPES
from ..errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("arch", nargs="?", help="architecture file (arch.json), or a run directory holding one")
    parser.add_argument("--space", help="space name, with --genotype or --sample instead of ARCH")
    parser.add_argument("--genotype", help="genotype string of --space (e.g. an NB201 arch string)")
    parser.add_argument("--dataset", default="cifar10", choices=sorted(DATASET_SHAPES),
                        help="input shape and classes for --space (default cifar10)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input image size for --space (default: the dataset's)")
    parser.add_argument("--sample", type=int, help="measure N sampled architectures of --space")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"],
                        help="latency runtime for --sample")
    parser.add_argument("--out", help="table file written by --sample (CSV)")
    parser.add_argument("--latency", action="store_true",
                        help="also measure latency (of the inference form: BN folded, same-edge ops merged)")
    parser.add_argument("--as-built", action="store_true",
                        help="time the network as training builds it, not its inference form")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, default=1, help="latency batch size")
    parser.add_argument("--runs", type=int, default=50, help="timed runs (median reported)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed warm-up runs")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for latency")
    parser.add_argument("--seed", type=int, default=0, help="seed for --sample")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


MAX_BATCH_SIZE = 65536  # one latency input beyond this is gigabytes


def run(args: argparse.Namespace) -> int:
    from ..runs.rundir import resolve_device
    from .latency import check_threads

    for name in ("batch_size", "runs"):
        if getattr(args, name) < 1:
            raise UserError("must be >= 1", where=f"--{name.replace('_', '-')}")
    if args.batch_size > MAX_BATCH_SIZE:
        raise UserError(f"batch size {args.batch_size} is too large", where="--batch-size",
                        fix=f"give 1 to {MAX_BATCH_SIZE}")
    if args.warmup < 0:
        raise UserError("must be >= 0", where="--warmup")
    check_threads(args.threads, where="--threads")
    device = str(resolve_device(args.device))
    if args.sample is not None:
        return _sample(args, device)
    arch = _resolve_arch(args)
    result = _profile(arch, device=device if args.latency else None, deployed=not args.as_built,
                      batch_size=args.batch_size, runs=args.runs, warmup=args.warmup, threads=args.threads)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        width = max(map(len, result))
        for key, value in result.items():
            print(f"  {key:<{width}}  {value:.3f}" if isinstance(value, float)
                  else f"  {key:<{width}}  {value}")
    return 0


def _profile(arch, **options):
    from .counts import profile

    return profile(arch, **options)


def _resolve_arch(args: argparse.Namespace):
    if args.arch and (args.space or args.genotype):
        raise UserError("give either ARCH.json or --space with --genotype, not both", where="profile")
    from ..arch import arch_from_genotype, load_arch

    if args.arch:
        return load_arch(args.arch)
    if not (args.space and args.genotype):
        raise UserError("nothing to profile", where="profile",
                        fix="give ARCH.json, or --space NAME --genotype STRING")
    channels, size, classes = _input_shape(args)
    return arch_from_genotype(args.space, args.genotype, in_channels=channels, input_size=size,
                              num_classes=classes)


def _input_shape(args: argparse.Namespace) -> tuple[int, int, int]:
    """(channels, image size, classes) for --space from --dataset and --image-size."""
    channels, size, classes = DATASET_SHAPES[args.dataset]
    if args.image_size is not None:
        if args.image_size < 4:
            raise UserError(f"image size {args.image_size} is too small", where="--image-size",
                            fix="give at least 4 (pixels)")
        size = args.image_size
    return channels, size, classes or 10


def _sample(args: argparse.Namespace, device: str) -> int:
    if not args.space or not args.out:
        raise UserError("--sample needs --space and --out", where="--sample",
                        fix="e.g. --space mbconv --sample 200 --out latency.csv")
    if args.sample < 1:
        raise UserError("must be >= 1", where="--sample")
    from .latency_table import collect_latency_table

    channels, size, classes = _input_shape(args)
    path = collect_latency_table(args.space, args.sample, backend=args.backend, device=device,
                                 batch_size=args.batch_size, warmup=args.warmup, runs=args.runs,
                                 threads=args.threads, seed=args.seed, out_path=args.out,
                                 in_channels=channels, input_size=size, num_classes=classes)
    print(f"input {channels}x{size}x{size}, {classes} classes")
    print(f"wrote {path}")
    return 0
