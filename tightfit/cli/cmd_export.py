"""`tightfit export`: turn saved weights (safetensors + model.json) into an ONNX model."""

from __future__ import annotations

import argparse
from pathlib import Path

from tightfit.errors import TightfitError
from tightfit.export.onnx import export_onnx
from tightfit.export.weights import load_weights
from tightfit.fileio import read_json
from tightfit.models.registry import ModelSpec
from tightfit.pipeline.rebuild import rebuild_model


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export weights.safetensors + model.json (from a run folder) to ONNX")
    p.add_argument("run_dir", type=Path, help="folder holding weights.safetensors and model.json")
    p.add_argument("--out", type=Path, help="ONNX file to write (default RUN_DIR/model.onnx)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    spec_path = args.run_dir / "model.json"
    if not spec_path.is_file():
        raise TightfitError(f"{spec_path} does not exist; point at a run folder with model.json and weights")
    try:
        spec = ModelSpec.from_json(read_json(spec_path))
    except (ValueError, TypeError, KeyError) as err:
        raise TightfitError(f"{spec_path} is not a tightfit model description ({err})") from None
    model = load_weights(rebuild_model(spec), args.run_dir / "weights.safetensors")
    out = export_onnx(model, (spec.in_channels, spec.resolution, spec.resolution),
                      args.out or args.run_dir / "model.onnx")
    print(out)
    return 0
