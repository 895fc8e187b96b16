"""Self-supervised crystal generator (Liu, Chen et al., iScience 2024): an equivariant graph
network pretrained to fill in masked species and denoise positions, fine-tuning heads, and a
GAN stage whose discriminator starts from the fine-tuned stability classifier."""
