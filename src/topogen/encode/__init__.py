"""Encodings of structures for the models: periodic graphs, local descriptors, tokens.

Modules are imported on demand (``from topogen.encode.graphs import structure_graph``) so
that importing the package stays cheap.
"""

from topogen.errors import TopogenError


class EncodingError(TopogenError, ValueError):
    """A structure or formula cannot be encoded (unknown element, overflow, no symmetry...)."""
