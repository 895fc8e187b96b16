"""Data sources: importing structure files, merging tables, downloading public databases."""
