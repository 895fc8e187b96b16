"""Crystal graph convolutional network for band gaps: the model and inference (model),
training on encoded graphs (train)."""
