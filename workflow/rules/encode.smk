# Encode stage: structure table -> model inputs (results/encode/<kind>.pt, weights-only torch
# files; see src/topogen/encode/store.py). Parameters: the config's encode.<kind> block.


rule encode_graphs:
    input:
        "results/data/structures.parquet",
    output:
        data="results/encode/graphs.pt",
        quarantine="results/encode/graphs.pt.quarantine.csv",
    params:
        kind="graphs",
        options=lambda wc: cli_options(**config["encode"]["graphs"]),
    log:
        "results/logs/encode_graphs.log",
    benchmark:
        "results/benchmarks/encode_graphs.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen encode {params.kind} {input:q} --out {output.data:q} --threads {threads}"
        " {params.options} > {log:q} 2>&1"


# Graphs of another table of results/data/ (e.g. the MC2D gaps the CGCNN trains on).
use rule encode_graphs as encode_table_graphs with:
    input:
        "results/data/{name}.parquet",
    output:
        data="results/encode/{name}/graphs.pt",
        quarantine="results/encode/{name}/graphs.pt.quarantine.csv",
    log:
        "results/logs/encode_graphs_{name}.log",
    benchmark:
        "results/benchmarks/encode_graphs_{name}.tsv"


use rule encode_graphs as encode_tokens with:
    output:
        data="results/encode/tokens.pt",
        quarantine="results/encode/tokens.pt.quarantine.csv",
    params:
        kind="tokens",
        options=lambda wc: cli_options(**config["encode"]["tokens"]),
    log:
        "results/logs/encode_tokens.log",
    benchmark:
        "results/benchmarks/encode_tokens.tsv"


use rule encode_graphs as encode_descriptors with:
    output:
        data="results/encode/descriptors.pt",
        quarantine="results/encode/descriptors.pt.quarantine.csv",
    params:
        kind="descriptors",
        options=lambda wc: cli_options(**config["encode"]["descriptors"]),
    log:
        "results/logs/encode_descriptors.log",
    benchmark:
        "results/benchmarks/encode_descriptors.tsv"


# Crystal images (three-stage GAN): trains the voxel autoencoders, then encodes the table
# (the autoencoder's training stays with its encoding: one rule, one command).
# A GPU rule on clusters (profiles/slurm); on CPU the small default trains in minutes.
rule encode_images:
    input:
        "results/data/structures.parquet",
    output:
        data="results/encode/images.pt",
        quarantine="results/encode/images.pt.quarantine.csv",
        model="results/models/autoencoder/autoencoder.ckpt",
        metrics="results/models/autoencoder/metrics.json",
    params:
        workdir="results/models/autoencoder/work",
        seed=config["seed"],
        options=lambda wc: cli_options(**config["encode"]["images"]),
        gpus=gpus,
    log:
        "results/logs/encode_images.log",
    benchmark:
        "results/benchmarks/encode_images.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 2
    shell:
        "topogen encode images {input:q} --out {output.data:q} --model {output.model:q}"
        " --metrics {output.metrics:q} --workdir {params.workdir:q} --threads {threads}"
        " --gpus {params.gpus:q} --seed {params.seed} {params.options} > {log:q} 2>&1"
