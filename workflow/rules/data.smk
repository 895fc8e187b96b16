# Data stage: structure files -> normalised structure tables (results/data/).


rule import_structures:
    input:
        files=lambda wc: import_set(wc)["files"],
    output:
        table="results/data/import/{name}.parquet",
        quarantine="results/data/import/{name}.parquet.quarantine.csv",
    params:
        source=lambda wc: import_set(wc).get("source", wc.name),
        min_distance=config["data"]["min_distance"],
    log:
        "results/logs/import_structures/{name}.log",
    benchmark:
        "results/benchmarks/import_structures/{name}.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen data import {input.files:q} --out {output.table:q}"
        " --source {params.source:q} --min-distance {params.min_distance:q} > {log:q} 2>&1"


rule merge_structures:
    input:
        used_import_tables,
    output:
        table="results/data/structures.parquet",
        quarantine="results/data/structures.parquet.quarantine.csv",
    log:
        "results/logs/merge_structures.log",
    benchmark:
        "results/benchmarks/merge_structures.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen data merge {input:q} --out {output.table:q} > {log:q} 2>&1"

