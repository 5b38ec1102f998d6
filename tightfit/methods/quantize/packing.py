"""The deployable size of a quantized network: its weights bit-packed into a safetensors file.

Each quantized layer stores b bits per weight (codes packed across byte boundaries) and either its
scale (linear: code k means (k - n) * s) or its 2^b centroids (k-means: code k means centroid k), plus
its input's clipping value when activations are quantized. Everything else (biases, batch norm, layers
left in floating point) is stored as fp32. The reported model size is the byte count of this file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load, save
from torch import nn

from tightfit.errors import TightfitError
from tightfit.fileio import write_atomic
from tightfit.methods.quantize.policy import FP, QuantLayer, QuantPolicy
from tightfit.methods.quantize.quantizers import levels

FORMAT = "tightfit-packed-1"


def pack_bits(codes: np.ndarray, bits: int) -> np.ndarray:
    """Unsigned codes < 2^bits, `bits` bits each, most significant first, into ceil(n * bits / 8) bytes."""
    planes = np.unpackbits(codes.astype(np.uint8).reshape(-1, 1), axis=1)[:, 8 - bits:]
    return np.packbits(planes.reshape(-1))


def unpack_bits(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    planes = np.unpackbits(packed)[: count * bits].reshape(count, bits)
    return (planes.astype(np.uint16) << np.arange(bits - 1, -1, -1, dtype=np.uint16)).sum(1).astype(np.uint8)


def _codes(q: QuantLayer) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The layer's weights as unsigned integer codes, and what decodes them."""
    if q.centroids is not None:
        return q.labels.numpy().reshape(-1), {"codebook": q.centroids.detach().float().numpy()}
    b, clip = q.bits.w_bits, float(q.w_clip)
    w = q.layer.weight.detach().float().reshape(-1)
    if b == 1:
        return (w >= 0).numpy().astype(np.uint8), {"scale": np.array([clip], np.float32)}
    n = levels(b, signed=True)
    scale = torch.tensor(clip).clamp_min(1e-12) / n
    k = torch.clamp(torch.round(w / scale), -n, n)
    return (k + n).numpy().astype(np.uint8), {"scale": np.array([float(scale)], np.float32)}


def packed_tensors(model: nn.Module, policy: QuantPolicy) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    tensors: dict[str, np.ndarray] = {}
    shapes: dict[str, list[int]] = {}
    skip: set[str] = set()
    for name, m in model.named_modules():
        if not isinstance(m, QuantLayer):
            continue
        skip.update(f"{name}.{k}" for k in ("w_clip", "a_clip", "centroids", "labels"))
        if m.bits.w_bits < FP:
            skip.add(f"{name}.layer.weight")
            codes, side = _codes(m)
            tensors[f"{name}.weight.codes"] = pack_bits(codes, m.bits.w_bits)
            tensors.update({f"{name}.weight.{k}": v for k, v in side.items()})
            shapes[name] = list(m.layer.weight.shape)
        if m.bits.a_bits < FP:
            tensors[f"{name}.input_clip"] = np.array([float(m.a_clip), float(m.a_signed)], np.float32)
    for key, value in model.state_dict().items():
        if key not in skip and value.is_floating_point():
            tensors[key.replace(".layer.", ".")] = value.detach().float().numpy().copy()
    meta = {"format": FORMAT, "policy": json.dumps(policy.to_json()), "shapes": json.dumps(shapes)}
    return tensors, meta


def pack(model: nn.Module, policy: QuantPolicy, path: str | Path) -> int:
    """Write `model` (from `quantize_model(..., policy, ...)`) packed to `path`; returns the file's bytes."""
    tensors, meta = packed_tensors(model, policy)
    data = save(tensors, metadata=meta)
    write_atomic(path, lambda tmp: tmp.write_bytes(data))
    return len(data)


def unpack(path: str | Path) -> tuple[dict[str, torch.Tensor], QuantPolicy]:
    """The float state_dict (quantized weights decoded to their values, names as in the original model)
    and the policy of a packed file."""
    raw = Path(path).read_bytes()
    try:
        from safetensors import safe_open

        with safe_open(str(path), "np") as f:
            meta = f.metadata() or {}
        tensors = load(raw)
    except Exception as e:  # safetensors raises its own error types for truncated or foreign files
        raise TightfitError(f"{path} is not a readable packed model ({e}); re-run the quantization") from e
    if meta.get("format") != FORMAT:
        raise TightfitError(f"{path} is not a {FORMAT} file")
    policy = QuantPolicy.from_json(json.loads(meta["policy"]))
    shapes = json.loads(meta["shapes"])
    state: dict[str, torch.Tensor] = {}
    for name, shape in shapes.items():
        b = policy.bits[name].w_bits
        count = int(np.prod(shape))
        codes = unpack_bits(tensors[f"{name}.weight.codes"], b, count).astype(np.int64)
        if f"{name}.weight.codebook" in tensors:
            values = tensors[f"{name}.weight.codebook"][codes]
        elif b == 1:
            values = np.where(codes == 1, 1.0, -1.0) * tensors[f"{name}.weight.scale"][0]
        else:
            values = (codes - levels(b, signed=True)) * tensors[f"{name}.weight.scale"][0]
        state[f"{name}.weight"] = torch.from_numpy(values.astype(np.float32).reshape(shape))
    for key, value in tensors.items():
        if not (key.endswith((".weight.codes", ".weight.scale", ".weight.codebook", ".input_clip"))):
            state[key] = torch.from_numpy(value.copy())
    return state, policy
