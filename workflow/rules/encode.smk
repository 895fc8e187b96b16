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
