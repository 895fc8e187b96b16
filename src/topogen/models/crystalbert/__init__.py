"""CrystalBERT (Xu, Qian, Wang et al., arXiv:2405.18944): a transformer over space-group,
electron-count, element and graph tokens, pretrained on lattice parameters and fine-tuned to
classify topology; the screening funnel's topology score."""
