"""LoGAN (Kovacs, Heid, De Landsheere & Madsen 2024): a Wasserstein GAN whose critic judges
local atomic environments, so it can propose structures for compositions it never saw."""
