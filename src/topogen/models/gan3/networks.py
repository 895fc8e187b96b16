"""The GAN's networks on crystal images: :class:`Generator` (noise -> image) and
:class:`Critic` (image -> logits; the discriminators and the Stage III reward model).

The rows of a crystal image are elements (and the lattice), not positions: neighbouring rows
are neighbours in Z, not in space. So the convolutions run along each row only (kernels one
row high) and rows meet only in the linear layers (the generator's first, the critic's last);
with 3-row kernels the generator blurred its activity onto the rows next to the common
elements (P beside S, As beside Se, Sb beside Te), and ``bench/gan_chemistry.py`` decoded
0 of 512 samples after 90 Stage I epochs, against 35% with 1-row kernels (5x faster too).

Element presence is the generator's own decision (a departure from the paper, whose generator
writes every element channel freely): a presence head (noise -> one logit per element row)
switches each element row fully on or off, forward pass hard (logit > 0), gradients through
the sigmoid (straight-through), so an absent element's row is exactly zero, as in a real image.
Without it the generator spread weak activity (RMS 0.1-0.2) over many metal rows, below the
decoder's presence threshold, and decoded mostly bare S, Se and Te (README, "crystal images").
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Generator(nn.Module):
    """Noise (B, noise_dim) -> crystal images (B, rows, cols); row 0 (the lattice) is always
    written, rows 1.. (elements) only where the presence head says so (module docstring)."""

    def __init__(self, noise_dim: int, rows: int, cols: int, width: int = 32) -> None:
        super().__init__()
        self.presence = nn.Sequential(
            nn.Linear(noise_dim, 4 * width), nn.ReLU(), nn.Linear(4 * width, rows - 1)
        )
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
        image = torch.tanh(self.net(h)[:, 0, :, : self.cols])
        soft = torch.sigmoid(self.presence(z))
        gate = (soft > 0.5).to(soft.dtype) + (soft - soft.detach())  # straight-through
        ones = torch.ones_like(gate[:, :1])
        return image * torch.cat([ones, gate], dim=1)[:, :, None]


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
