# topogen: generative design of 2D topological insulators.
# Thin rules only: every rule runs one `topogen ...` command (see src/topogen/cli.py).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/encode.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/screen.smk"
include: "workflow/rules/dft.smk"
include: "workflow/rules/report.smk"


report: "workflow/report/workflow.rst"


rule all:
    input:
        "results/data/structures.parquet",
        "results/report/structures.png",
        "results/encode/graphs.pt",
        "results/encode/tokens.pt",
        "results/models/autoencoder/metrics.json",
        "results/models/gan/stage1/metrics.png",
        "results/models/gan/stage2/metrics.png",
        "results/models/gan/stage3/metrics.png",
        "results/generate/candidates.parquet",
    default_target: True
