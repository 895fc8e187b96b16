"""The crystal-image autoencoder of the three-stage GAN: voxel autoencoders (networks),
crystal images (crystal), training and loading (train), the crystal-image stage (images)
and round-trip scores (roundtrip)."""
