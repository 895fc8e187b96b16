"""The three-stage GAN on crystal images (Tyner 2025): networks, the LightningModule, stage
training, the Stage III oracle and sampling."""
