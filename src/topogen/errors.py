"""Exceptions that the CLI turns into a one-line reason and exit code 1."""


class TopogenError(Exception):
    """A failure the user can act on; the message names the file, row and reason."""


class TableSchemaError(TopogenError):
    """A structure table does not follow the schema (missing column, bad row, ...)."""


class ProvenanceError(TopogenError):
    """A provenance chain is broken: a checksum no longer matches or a file is missing."""
