"""The GAN's networks on crystal images: :class:`Generator` (noise -> image) and
:class:`Critic` (image -> logits; the discriminators and the Stage III reward model).

The rows of a crystal image are elements (and the lattice), not positions: neighbouring rows
are neighbours in Z, not in space. So the convolutions run along each row only (kernels one
row high) and rows meet only in the linear layers (the generator's first, the critic's last);
with 3-row kernels the generator blurred its activity onto the rows next to the common
elements (P beside S, As beside Se, Sb beside Te), and ``bench/gan_chemistry.py`` decoded
0 of 512 samples after 90 Stage I epochs, against 35% with 1-row kernels (5x faster too).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Generator(nn.Module):
    """Noise (B, noise_dim) -> crystal images (B, rows, cols)."""

    def __init__(self, noise_dim: int, rows: int, cols: int, width: int = 32) -> None:
        super().__init__()
        self.rows, self.cols, self.width = rows, cols, width
        self.w0 = math.ceil(cols / 4)
        self.fc = nn.Linear(noise_dim, 2 * width * rows * self.w0)
        up = {"kernel_size": (1, 4), "stride": (1, 2), "padding": (0, 1)}  # width x 2
        self.net = nn.Sequential(
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, **up),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, width, **up),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 1, (1, 3), padding=(0, 1)),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(len(z), 2 * self.width, self.rows, self.w0)
        return torch.tanh(self.net(h)[:, 0, :, : self.cols])


class Critic(nn.Module):
    """Crystal images (B, rows, cols) -> logits (B, heads)."""

    def __init__(self, rows: int, cols: int, width: int = 32, heads: int = 1) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        down = {"kernel_size": (1, 4), "stride": (1, 2), "padding": (0, 1)}
        self.net = nn.Sequential(
            sn(nn.Conv2d(1, width, (1, 3), padding=(0, 1))),
            nn.LeakyReLU(0.2),
            sn(nn.Conv2d(width, 2 * width, **down)),
            nn.LeakyReLU(0.2),
            sn(nn.Conv2d(2 * width, 2 * width, **down)),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        with torch.no_grad():
            n = self.net(torch.zeros(1, 1, rows, cols)).shape[1]
        self.head = sn(nn.Linear(n, heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x[:, None]))
