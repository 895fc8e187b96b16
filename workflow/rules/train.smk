# Train stage: models under results/models/ (checkpoints, per-epoch logs, held-out metrics).
# GPU rules take their devices from the profile's resources (see profiles/slurm).


rule train_cgcnn:
    input:
        graphs="results/encode/graphs.pt",
        table="results/data/structures.parquet",
    output:
        model="results/models/cgcnn/model.ckpt",
        metrics="results/models/cgcnn/metrics.json",
        quarantine="results/models/cgcnn/model.ckpt.quarantine.csv",
    params:
        workdir="results/models/cgcnn/work",
        options=lambda wc: cli_options(**config["train"]["cgcnn"], seed=config["seed"]),
    log:
        "results/logs/train_cgcnn.log",
    benchmark:
        "results/benchmarks/train_cgcnn.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 2
    shell:
        "topogen train cgcnn --graphs {input.graphs:q} --table {input.table:q}"
        " --out {output.model:q} --metrics {output.metrics:q} --workdir {params.workdir:q}"
        " --threads {threads} {params.options} > {log:q} 2>&1"
