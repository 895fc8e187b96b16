"""Summaries and plots of stage outputs, for people and for `snakemake --report`."""
