"""Files: structure tables, atomic writes, quarantine files, provenance manifests."""
