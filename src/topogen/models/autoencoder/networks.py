"""The 3D-convolutional voxel autoencoder (:class:`VoxelAutoencoder`) and its layers:
periodic or zero-padded convolutions, CoordConv-style coordinate channels."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


def _wrap_pad(x: torch.Tensor) -> torch.Tensor:
    """Pad the three spatial axes by one voxel periodically (3 concatenations: cheaper than
    ``F.pad(mode="circular")``, which copies face by face)."""
    for dim in (2, 3, 4):
        x = torch.cat([x.narrow(dim, x.shape[dim] - 1, 1), x, x.narrow(dim, 0, 1)], dim)
    return x


class _Conv(nn.Module):
    """3x3x3 convolution with periodic or zero padding of one voxel."""

    def __init__(
        self, cin: int, cout: int, stride: int = 1, periodic: bool = True, bias: bool = True
    ) -> None:
        super().__init__()
        self.periodic = periodic
        self.conv = nn.Conv3d(cin, cout, 3, stride=stride, padding=0 if periodic else 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(_wrap_pad(x) if self.periodic else x)


def coordinate_channels(size: int, periodic: bool, device: Any = None) -> torch.Tensor:
    """(n, size, size, size) fixed position channels for CoordConv-style layers:
    ``sin`` and ``cos`` of ``2 pi i / size`` per axis when periodic (6 channels), else a linear
    ramp from -1 to 1 per axis (3 channels)."""
    i = torch.arange(size, dtype=torch.float32, device=device)
    if periodic:
        t = 2 * math.pi * i / size
        axes = [torch.sin(t), torch.cos(t)]
    else:
        axes = [torch.linspace(-1, 1, size, device=device)]
    out = []
    for dim in range(3):
        shape = [1, 1, 1]
        shape[dim] = size
        for a in axes:
            out.append(a.view(shape).expand(size, size, size))
    return torch.stack(out)


class _CoordConv(nn.Module):
    """A 3x3x3 convolution of ``cat([x, coordinates])``, computed as ``conv(x)`` plus a
    convolution of the fixed coordinate channels done once per call for the whole batch
    (the same result without concatenating them to every sample)."""

    def __init__(self, cin: int, cout: int, size: int, periodic: bool) -> None:
        super().__init__()
        coords = coordinate_channels(size, periodic)
        self.register_buffer("coords", coords[None], persistent=False)
        self.conv = _Conv(cin, cout, 1, periodic)
        self.pos = _Conv(len(coords), cout, 1, periodic, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.pos(self.coords.to(x.dtype))


class VoxelAutoencoder(nn.Module):
    """3D-conv autoencoder (C, G, G, G) -> latent (latent_dim,) in [-1, 1] -> logits.

    Encoder: a 3x3x3 convolution to ``width`` channels, then stride-2 3x3x3 convolutions
    (channels doubling up to ``max_width``) while the grid is even and larger than 4, each
    with batch norm and GELU, then a linear layer, a batch norm without affine parameters and
    ``tanh`` (standardised, bounded latents). Decoder: a linear layer, then per level a
    stride-2 transposed convolution (kernel 2) and a 3x3x3 convolution; a last 3x3x3
    convolution gives the logits. The decoder's convolutions also see fixed coordinate
    channels (:func:`coordinate_channels`; CoordConv, Liu et al., NeurIPS 2018), which makes
    "put a blob at the voxel this vector names" a smooth function to learn. Without the batch
    norms, the sparse grids (a few blobs in 16^3 voxels) hardly move the encoder's output and
    the decoder settles on the mean grid. ``periodic``: circular padding, periodic
    coordinates. Full-resolution layers are thin: 3D convolutions dominate the cost on CPUs.
    """

    def __init__(
        self,
        channels: int,
        grid: int,
        latent_dim: int,
        width: int = 8,
        max_width: int = 64,
        periodic: bool = True,
    ) -> None:
        super().__init__()
        sizes, widths = [grid], [width]
        while sizes[-1] > 4 and sizes[-1] % 2 == 0:
            sizes.append(sizes[-1] // 2)
            widths.append(min(2 * widths[-1], max_width))
        self.sizes, self.widths = sizes, widths
        self.stem = _Conv(channels, width, 1, periodic)
        self.down = nn.ModuleList(
            _Conv(widths[k], widths[k + 1], 2, periodic) for k in range(len(sizes) - 1)
        )
        self.enc_norms = nn.ModuleList(nn.BatchNorm3d(w) for w in widths)
        flat = widths[-1] * sizes[-1] ** 3
        self.to_latent = nn.Linear(flat, latent_dim)
        self.latent_norm = nn.BatchNorm1d(latent_dim, affine=False)
        self.from_latent = nn.Linear(latent_dim, flat)
        levels = list(reversed(range(len(sizes) - 1)))  # coarse to fine
        self.up = nn.ModuleList(
            nn.ConvTranspose3d(widths[k + 1], widths[k], 2, stride=2) for k in levels
        )
        # a coordinate-aware 3x3x3 convolution after each upsampling but the last one
        self.refine = nn.ModuleList(
            _CoordConv(widths[k], widths[k], sizes[k], periodic) for k in levels[:-1]
        )
        self.dec_norms = nn.ModuleList(nn.BatchNorm3d(widths[k]) for k in levels[:-1])
        self.head = _CoordConv(width, channels, grid, periodic)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.enc_norms[0](self.stem(x)))
        for conv, norm in zip(self.down, self.enc_norms[1:], strict=True):
            h = F.gelu(norm(conv(h)))
        return torch.tanh(self.latent_norm(self.to_latent(h.flatten(1))))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents -> logits; ``torch.sigmoid`` gives the grid."""
        s = self.sizes[-1]
        h = F.gelu(self.from_latent(z)).view(-1, self.widths[-1], s, s, s)
        for k, up in enumerate(self.up):
            h = F.gelu(up(h))
            if k < len(self.refine):
                h = F.gelu(self.dec_norms[k](self.refine[k](h)))
        return self.head(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
