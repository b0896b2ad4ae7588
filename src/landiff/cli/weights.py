"""``landiff weights``: bring third-party weights the user downloaded into landiff's safe format.

    landiff weights import-inception pt_inception-2015-12-05-6726825d.pth
    landiff weights import-inception FILE.pth --out weights/inception.safetensors

landiff never downloads anything: fetch ``pt_inception-2015-12-05-6726825d.pth`` from pytorch-fid's
GitHub release yourself. The file is read with ``torch.load(weights_only=True)`` (tensors and plain
containers only, no arbitrary unpickling), checked against the FID Inception architecture and
written as safetensors, by default to ``~/.cache/landiff/inception/pt_inception-2015-12-05.safetensors``
where ``landiff eval fid|kid|pr`` finds it.
"""

from __future__ import annotations

import argparse

from landiff.metrics.features import ENV_VAR, SOURCE_SHA256_PREFIX, default_weights_path, import_inception
from landiff.options import Spec, check_input_file, check_output_file


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("weights", help="import weights you downloaded (FID Inception)",
                                   description="convert the FID Inception weights you downloaded to safetensors")
    sub = parser.add_subparsers(dest="weights_command", metavar="ACTION")
    p = sub.add_parser("import-inception", help="convert pytorch-fid's pt_inception-2015-12-05-6726825d.pth "
                       "to safetensors")
    Spec("file", "path", "the .pth file you downloaded", required=True).add_to(p)
    Spec("--out", "path", "the .safetensors file to write (eval fid, kid and pr find the default place themselves)",
         default_text="~/.cache/landiff/inception/pt_inception-2015-12-05.safetensors").add_to(p)
    p.set_defaults(func=run_import_inception)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def run_import_inception(args: argparse.Namespace) -> int:
    check_input_file(args.file, "FILE", "downloaded .pth file")
    check_output_file(args.out if args.out is not None else default_weights_path(), "--out")
    path, digest = import_inception(args.file, args.out)
    print(f"wrote {path} (source sha256 {digest})")
    if not digest.startswith(SOURCE_SHA256_PREFIX):
        print(f"warning: the source's sha256 does not start with {SOURCE_SHA256_PREFIX} like pytorch-fid's "
              "published file; FID values will not be comparable with published ones")
    if path.resolve() != default_weights_path().resolve():
        print(f"use it with --inception {path} or {ENV_VAR}={path}")
    return 0
