"""LightningModules: autoencoders, image GAN, CGCNN, CrystalBERT, ... (depend on encode)."""
