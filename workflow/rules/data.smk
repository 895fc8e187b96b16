# Data stage: public databases and local files -> normalised structure tables (results/data/).
# Each source is a rule pair download_<source> -> normalize_<source>; the tables named in
# data.merge are merged into results/data/structures.parquet.


# Compute nodes often have no internet: downloads run on the submit host.
localrules:
    download_c2db,
    download_jarvis_c2db,
    download_tqc,
    download_qm9,
    download_mp,
    download_mc2d_gaps,


rule build_prototypes:
    input:
        labels=DATA["prototypes"]["labels"],
    output:
        table="results/data/prototypes.parquet",
        quarantine="results/data/prototypes.parquet.quarantine.csv",
    params:
        options=lambda wc: prototype_options(),
    log:
        "results/logs/build_prototypes.log",
    benchmark:
        "results/benchmarks/build_prototypes.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 2
    shell:
        "topogen data prototypes --labels {input.labels:q} --out {output.table:q}"
        " --threads {threads} {params.options} > {log:q} 2>&1"


rule download_c2db:
    output:
        "results/data/raw/c2db/c2db.db",
    params:
        options=lambda wc: download_options("c2db"),
    log:
        "results/logs/download_c2db.log",
    benchmark:
        "results/benchmarks/download_c2db.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen download {params.options} --out {output:q} > {log:q} 2>&1"


use rule download_c2db as download_jarvis_c2db with:
    output:
        "results/data/raw/jarvis_c2db/c2db_atoms.zip",
    params:
        options=lambda wc: download_options("jarvis_c2db"),
    log:
        "results/logs/download_jarvis_c2db.log",
    benchmark:
        "results/benchmarks/download_jarvis_c2db.tsv"


use rule download_c2db as download_tqc with:
    output:
        "results/data/raw/tqc/export.csv",
    params:
        options=lambda wc: download_options("tqc"),
    log:
        "results/logs/download_tqc.log",
    benchmark:
        "results/benchmarks/download_tqc.tsv"


# The full MC2D (Mounet et al. 2018; Materials Cloud Archive 2020.158, CC BY 4.0): only when
# data.mc2d_gaps.url is set; otherwise the shipped derived table data.mc2d_gaps.file is read.
use rule download_c2db as download_mc2d_gaps with:
    output:
        "results/data/raw/mc2d/structures.json",
    params:
        options=lambda wc: download_options("mc2d_gaps"),
    log:
        "results/logs/download_mc2d_gaps.log",
    benchmark:
        "results/benchmarks/download_mc2d_gaps.tsv"


rule download_qm9:
    output:
        archive="results/data/raw/qm9/dsgdb9nsd.xyz.tar.bz2",
        uncharacterized="results/data/raw/qm9/uncharacterized.txt",
    params:
        archive=lambda wc: download_options("qm9"),
        uncharacterized=lambda wc: download_options("qm9", "uncharacterized_url"),
    log:
        "results/logs/download_qm9.log",
    benchmark:
        "results/benchmarks/download_qm9.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    shell:
        "(topogen download {params.archive} --out {output.archive:q}"
        " && topogen download {params.uncharacterized} --out {output.uncharacterized:q})"
        " > {log:q} 2>&1"


rule download_mp:
    output:
        "results/data/raw/mp/summary.json.gz",
    params:
        options=lambda wc: mp_query_options(),
    log:
        "results/logs/download_mp.log",
    benchmark:
        "results/benchmarks/download_mp.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    shell:
        "topogen data query-mp {params.options} --out {output:q} > {log:q} 2>&1"


rule normalize_c2db:
    input:
        "results/data/raw/c2db/c2db.db",
    output:
        table="results/data/c2db.parquet",
        quarantine="results/data/c2db.parquet.quarantine.csv",
    params:
        source="c2db",
        options=lambda wc: cli_options(topological=DATA["c2db"]["topological"]),
        min_distance=DATA["min_distance"],
    log:
        "results/logs/normalize_c2db.log",
    benchmark:
        "results/benchmarks/normalize_c2db.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen data normalize {params.source} {input:q} --out {output.table:q}"
        " --min-distance {params.min_distance} {params.options} > {log:q} 2>&1"


use rule normalize_c2db as normalize_jarvis_c2db with:
    input:
        "results/data/raw/jarvis_c2db/c2db_atoms.zip",
    output:
        table="results/data/jarvis_c2db.parquet",
        quarantine="results/data/jarvis_c2db.parquet.quarantine.csv",
    params:
        source="jarvis-c2db",
        options="",
        min_distance=DATA["min_distance"],
    log:
        "results/logs/normalize_jarvis_c2db.log",
    benchmark:
        "results/benchmarks/normalize_jarvis_c2db.tsv"


use rule normalize_jarvis_c2db as normalize_mp with:
    input:
        "results/data/raw/mp/summary.json.gz",
    output:
        table="results/data/mp.parquet",
        quarantine="results/data/mp.parquet.quarantine.csv",
    params:
        source="mp",
        options="",
        min_distance=DATA["min_distance"],
    log:
        "results/logs/normalize_mp.log",
    benchmark:
        "results/benchmarks/normalize_mp.tsv"


# DFT gaps of 2D monolayers for the band-gap model (train.cgcnn.table: mc2d_gaps).
use rule normalize_jarvis_c2db as normalize_mc2d_gaps with:
    input:
        mc2d_gaps_file,
    output:
        table="results/data/mc2d_gaps.parquet",
        quarantine="results/data/mc2d_gaps.parquet.quarantine.csv",
    params:
        source="mc2d-gaps",
        options="",
        min_distance=DATA["min_distance"],
    log:
        "results/logs/normalize_mc2d_gaps.log",
    benchmark:
        "results/benchmarks/normalize_mc2d_gaps.tsv"


rule normalize_qm9:
    input:
        unpack(qm9_raw_files),
    output:
        table="results/data/qm9.parquet",
        quarantine="results/data/qm9.parquet.quarantine.csv",
    params:
        options=lambda wc, input: qm9_normalize_options(input),
    log:
        "results/logs/normalize_qm9.log",
    benchmark:
        "results/benchmarks/normalize_qm9.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 1
    shell:
        "topogen data normalize qm9 {params.options} --out {output.table:q} > {log:q} 2>&1"


rule normalize_tqc:
    input:
        export="results/data/raw/tqc/export.csv",
        mp="results/data/mp.parquet",
    output:
        table="results/data/tqc.parquet",
        quarantine="results/data/tqc.parquet.quarantine.csv",
    log:
        "results/logs/normalize_tqc.log",
    benchmark:
        "results/benchmarks/normalize_tqc.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen data normalize tqc {input.export:q} --mp-table {input.mp:q}"
        " --out {output.table:q} > {log:q} 2>&1"


rule normalize_topoa:
    input:
        lambda wc: topoa_files(),
    output:
        table="results/data/topoa.parquet",
        quarantine="results/data/topoa.parquet.quarantine.csv",
    params:
        dir=DATA["topoa"]["dir"],
    log:
        "results/logs/normalize_topoa.log",
    benchmark:
        "results/benchmarks/normalize_topoa.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen data normalize topoa {params.dir:q} --out {output.table:q} > {log:q} 2>&1"


rule import_structures:
    input:
        files=lambda wc: DATA["imports"][wc.name]["files"],
    output:
        table="results/data/import/{name}.parquet",
        quarantine="results/data/import/{name}.parquet.quarantine.csv",
    params:
        source=lambda wc: DATA["imports"][wc.name].get("source", wc.name),
        min_distance=DATA["min_distance"],
    log:
        "results/logs/import_structures/{name}.log",
    benchmark:
        "results/benchmarks/import_structures/{name}.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen data import {input.files:q} --out {output.table:q}"
        " --source {params.source:q} --min-distance {params.min_distance} > {log:q} 2>&1"


rule merge_structures:
    input:
        merged_tables,
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
