"""One folder per model (autoencoder/, gan3/, cgcnn/, ...), each training with the one
Trainer factory of :mod:`topogen.models.training` (depend on encode, calc, topology)."""
