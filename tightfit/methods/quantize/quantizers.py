"""Quantizers of HAQ (Wang, Liu, Lin, Lin and Han, CVPR 2019), section 3.3, and of Deep Compression.

Linear quantization with a clipping value c:
    weights (signed):       s = c / (2^(b-1) - 1),  q(w) = round(clamp(w, -c, c) / s) * s
    activations (unsigned): s = c / (2^b - 1),      q(a) = round(clamp(a, 0, c) / s) * s
    (an input that can be negative, such as a linear bottleneck's, is quantized signed like weights)
c = argmin_x KL(p(w) || p(q(w, b, x))) below `KL_BELOW_BITS` bits, as the released code does, the
maximum |w| otherwise. Fine-tuning uses the straight-through estimator (round's gradient taken as 1).
k-means quantization (Han et al., ICLR 2016): 2^b centroids per layer, each weight replaced by its centroid;
the centroids are the trainable parameters (each one's gradient is the sum over its weights).
"""

from __future__ import annotations

import torch

KL_BELOW_BITS = 5
HIST_BINS = 2048
CLIP_CANDIDATES = 96


def levels(bits: int, signed: bool) -> int:
    """Positive quantization levels: 2^(b-1) - 1 signed (symmetric), 2^b - 1 unsigned."""
    return 2 ** (bits - 1) - 1 if signed else 2**bits - 1


def linear_quantize(x: torch.Tensor, bits: int, clip: float | torch.Tensor, signed: bool) -> torch.Tensor:
    """round(clamp(x) / s) * s, with s = c / levels; the result keeps x's dtype."""
    n = levels(bits, signed)
    scale = torch.as_tensor(clip, dtype=x.dtype, device=x.device).clamp_min(1e-12) / n
    # in place after the first division: three times faster than fresh tensors, which matters because every
    # HAQ episode evaluates the fake-quantized network
    return (x / scale).round_().clamp_(-n if signed else 0, n).mul_(scale)


class _RoundSTE(torch.autograd.Function):
    """Straight-through estimator: quantize forward, identity backward inside the clipping range."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bits: int, clip: torch.Tensor, signed: bool) -> torch.Tensor:  # noqa: ANN001
        ctx.save_for_backward(x, clip)
        ctx.signed = signed
        return linear_quantize(x, bits, clip, signed)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: ANN205
        x, clip = ctx.saved_tensors
        low = -clip if ctx.signed else torch.zeros_like(clip)
        inside = (x >= low) & (x <= clip)  # the clamp's own gradient is 0 outside
        return grad * inside, None, None, None


def fake_quantize(x: torch.Tensor, bits: int, clip: torch.Tensor, signed: bool) -> torch.Tensor:
    return _RoundSTE.apply(x, bits, clip, signed)


def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> float:
    """KL(p || q) of two histograms over the same bins (normalised here), over the bins where p > 0."""
    p, q = p / p.sum(), q / q.sum()
    mask = p > 0
    return float((p[mask] * torch.log(p[mask] / q[mask].clamp_min(1e-12))).sum())


@torch.no_grad()
def kl_clip(x: torch.Tensor, bits: int, signed: bool) -> float:
    """The clipping c that keeps the quantized distribution closest (KL) to the original one, as in
    TensorRT's calibration, which HAQ's released code applies below 5 bits (at 5 and above: max |x|).

    On a histogram of |x| (or of x >= 0, unsigned), for each candidate c: P is the histogram up to c with
    the clipped outliers added to its last bin; Q merges P's bins into the quantizer's levels and spreads
    each level's mass back over the bins P fills (a bin belongs to the level its centre rounds to).
    c = argmin KL(P || Q).
    """
    values = x.detach().flatten().float()
    magnitudes = values.abs() if signed else values.clamp_min(0)
    # exact zeros (half of a ReLU's outputs) are exact at every c, so they cannot inform the choice; left in,
    # Q smears their spike over level 0's bins and that artefact, not the tail, decides c
    magnitudes = magnitudes[magnitudes > 0]
    if magnitudes.numel() == 0:
        return 1e-12
    top = float(magnitudes.max())
    if bits >= KL_BELOW_BITS:
        return top
    hist = torch.histc(magnitudes, HIST_BINS, 0.0, top)
    n = levels(bits, signed)
    best, best_kl = top, float("inf")
    for i in torch.linspace(max(n, 8), HIST_BINS, CLIP_CANDIDATES).round().int().unique().tolist():
        p = hist[:i].clone()
        p[-1] += hist[i:].sum()
        filled = (hist[:i] > 0).float()
        # the level (0..n, rounding to the nearest multiple of s = c / n) each bin's centre quantizes to
        level = torch.round((torch.arange(i) + 0.5) * n / i).long().clamp(0, n)
        mass = torch.zeros(n + 1).index_add_(0, level, hist[:i])  # without the outliers, as TensorRT
        support = torch.zeros(n + 1).index_add_(0, level, filled)
        q = filled * (mass / support.clamp_min(1))[level]
        kl = kl_divergence(p, q)
        if kl < best_kl:
            best, best_kl = (i / HIST_BINS) * top, kl
    return best


@torch.no_grad()
def kmeans(w: torch.Tensor, bits: int, iterations: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D k-means of the weights into 2^b clusters, linearly initialised over [min, max] as in Deep
    Compression. Returns (centroids (2^b,), labels shaped like w)."""
    values = w.detach().flatten().float()
    k = min(2**bits, values.numel())
    centroids = torch.linspace(float(values.min()), float(values.max()), k)
    for _ in range(iterations):  # in 1-D the clusters are intervals, so the centroids stay sorted
        labels = _nearest(values, centroids)
        sums = torch.zeros(k).index_add_(0, labels, values)
        counts = torch.zeros(k).index_add_(0, labels, torch.ones_like(values))
        updated = torch.where(counts > 0, sums / counts.clamp_min(1), centroids)
        if torch.allclose(updated, centroids):
            break
        centroids = updated
    return centroids.to(w.dtype), _nearest(values, centroids).view_as(w)


def _nearest(values: torch.Tensor, sorted_centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest of sorted centroids, through the midpoints (O(n log k), no n x k matrix)."""
    return torch.bucketize(values, (sorted_centroids[1:] + sorted_centroids[:-1]) / 2)
