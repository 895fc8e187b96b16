# CGCNN band-gap model (topogen.models.cgcnn): an oracle of the GAN's Stage III and the
# funnel's band-gap step, not a generator. Trained on train.cgcnn.table (a table with
# band_gap: by default mc2d_gaps, the DFT gaps of MC2D shipped in resources/).


rule train_cgcnn:
    input:
        unpack(cgcnn_inputs),
    output:
        model="results/models/cgcnn/model.ckpt",
        metrics="results/models/cgcnn/metrics.json",
        quarantine="results/models/cgcnn/model.ckpt.quarantine.csv",
    params:
        workdir="results/models/cgcnn/work",
        seed=config["seed"],
        options=lambda wc: cgcnn_options(),
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
