# CGCNN band-gap model (topogen.models.cgcnn): an oracle of the GAN's Stage III and the
# funnel's band-gap step, not a generator. Needs a table with band_gap (e.g. C2DB).


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
        seed=config["seed"],
        options=lambda wc: cli_options(**config["train"]["cgcnn"]),
    log:
        "results/logs/train_cgcnn.log",
    benchmark:
        "results/benchmarks/train_cgcnn.tsv"
    conda:
        "../../../envs/ml.yaml"
    threads: 2
    shell:
        "topogen train cgcnn --graphs {input.graphs:q} --table {input.table:q}"
        " --out {output.model:q} --metrics {output.metrics:q} --workdir {params.workdir:q}"
        " --threads {threads} --seed {params.seed} {params.options} > {log:q} 2>&1"
