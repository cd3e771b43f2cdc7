"""Label-free data augmentation of images, and the self-paced choice of which pseudo-labels
to train on (vaemix's protocol only; the ``paper`` protocol never augments).

What the best autoencoder-based deep clusterings on MNIST share (DEC-DA and ConvDEC-DA,
Guo, Zhu, Liu & Yin 2018, sec. 3; ASPC-DA, Guo, Liu, Zhu & Yin 2019, sec. 3.4; DynAE,
Mrabah et al. 2020): each training image is moved by a random affine map -- a shift of up
to 10 % of its side in each direction and a rotation of up to 10 degrees -- before the
encoder sees it, both while the autoencoder is pretrained (it still reconstructs the clean
image) and while the network is trained to agree with its pseudo-labels. No label is used:
the class of a digit does not change under a small shift or rotation, so codes that do not
change either cluster by class rather than by pose.

``self_paced_mask`` is ASPC-DA's adaptive self-paced selection (Guo et al. 2019, sec. 3.3,
eq. 8-9): a sample's pseudo-label is trained on only while its loss is below
λ_t = mean(ℓ) + (t / T) std(ℓ), the mean and std over the training set at the start of
epoch t of T, so the most confident samples come first and the doubtful ones join as
training goes on. vaemix's ℓ_i is the anchor's own cross-entropy, -ln q(c = label_i | x_i)
on the clean image (ASPC-DA's is the distance of the embedding to its cluster centre).

Images are inputs whose per-example shape is H x W or C x H x W (MNIST, CIFAR-100, an
npz of N x H x W or N x C x H x W); any other input (spiral, a flat npz) is left as it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def is_image(input_shape: Sequence[int]) -> bool:
    """Whether examples of this shape (without the batch axis) are images: H x W or
    C x H x W."""
    return len(input_shape) in (2, 3)


def random_affine(x: Tensor, max_shift: float, max_degrees: float,
                  generator: torch.Generator | None = None) -> Tensor:
    """Each image of x [N, C, H, W] or [N, H, W] rotated by U(-max_degrees, max_degrees)
    about its centre and shifted by U(-max_shift, max_shift) of its side in each
    direction (bilinear, zero outside), as one batched ``affine_grid`` / ``grid_sample``.
    The draws come from ``generator`` (torch's global one when None): the same seed, the
    same copies."""
    flat = x.dim() == 3
    if flat:
        x = x.unsqueeze(1)
    n = x.shape[0]
    draws = torch.rand(n, 3, generator=generator, device="cpu").to(x.device) * 2 - 1
    angle = draws[:, 0] * math.radians(max_degrees)
    shift = draws[:, 1:] * (2 * max_shift)  # affine_grid's [-1, 1]: a side is 2 units
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], -1),
                         torch.stack([sin, cos, shift[:, 1]], -1)], 1)   # [N, 2, 3]
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.squeeze(1) if flat else out


@dataclass(frozen=True)
class Augment:
    """Random shifts of up to ``shift`` of the side and rotations of up to ``rotate``
    degrees, applied to image batches only; ``Augment(0, 0)`` changes nothing."""

    shift: float = 0.0
    rotate: float = 0.0

    @property
    def active(self) -> bool:
        return self.shift > 0 or self.rotate > 0

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if not self.active or not is_image(x.shape[1:]):
            return x
        return random_affine(x, self.shift, self.rotate, generator)


def self_paced_threshold(losses: Tensor, progress: float) -> float:
    """ASPC-DA's λ_t = mean(ℓ) + progress * std(ℓ), ``progress`` = t / T in [0, 1]
    (Guo et al. 2019, eq. 9)."""
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be in [0, 1], got {progress}")
    return float(losses.mean() + progress * losses.std(unbiased=False))


def self_paced_mask(losses: Tensor, progress: float) -> Tensor:
    """Which samples are trained on at ``progress`` = t / T: those whose loss ``losses`` [N]
    is below λ_t (:func:`self_paced_threshold`); the most confident first."""
    return losses < self_paced_threshold(losses, progress)
