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


# Three-stage GAN (topogen.models.gan3): each stage starts from the previous one's model.
# GPU rules on clusters: `gpu` comes from the profile's set-resources (--gpus), else auto.
rule train_gan_stage1:
    input:
        images="results/encode/images.pt",
        table="results/data/structures.parquet",
    output:
        model="results/models/gan/stage1/model.ckpt",
        metrics="results/models/gan/stage1/metrics.csv",
        plot=report("results/models/gan/stage1/metrics.png", category="GAN"),
    params:
        workdir="results/models/gan/stage1/work",
        options=lambda wc: gan_options(1),
        extra="",
        gpus=gpus,
    log:
        "results/logs/train_gan_stage1.log",
    benchmark:
        "results/benchmarks/train_gan_stage1.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 2
    shell:
        "topogen train gan --images {input.images:q} --table {input.table:q}"
        " --out {output.model:q} --metrics {output.metrics:q} --plot {output.plot:q}"
        " --workdir {params.workdir:q} --threads {threads} --gpus {params.gpus:q}"
        " {params.options} {params.extra} > {log:q} 2>&1"


use rule train_gan_stage1 as train_gan_stage2 with:
    input:
        images="results/encode/images.pt",
        table="results/data/structures.parquet",
        init="results/models/gan/stage1/model.ckpt",
    output:
        model="results/models/gan/stage2/model.ckpt",
        metrics="results/models/gan/stage2/metrics.csv",
        plot=report("results/models/gan/stage2/metrics.png", category="GAN"),
    params:
        workdir="results/models/gan/stage2/work",
        options=lambda wc: gan_options(2),
        extra=lambda wc, input: cli_options(init=input.init),
        gpus=gpus,
    log:
        "results/logs/train_gan_stage2.log",
    benchmark:
        "results/benchmarks/train_gan_stage2.tsv"


use rule train_gan_stage1 as train_gan_stage3 with:
    input:
        unpack(gan_stage3_inputs),
        images="results/encode/images.pt",
        table="results/data/structures.parquet",
        init="results/models/gan/stage2/model.ckpt",
        autoencoder="results/models/autoencoder/autoencoder.ckpt",
    output:
        model="results/models/gan/stage3/model.ckpt",
        metrics="results/models/gan/stage3/metrics.csv",
        plot=report("results/models/gan/stage3/metrics.png", category="GAN"),
    params:
        workdir="results/models/gan/stage3/work",
        options=lambda wc: gan_options(3),
        extra=lambda wc, input: cli_options(
            init=input.init,
            autoencoder=input.autoencoder,
            band_gap_model=input.get("band_gap_model"),
        ),
        gpus=gpus,
    log:
        "results/logs/train_gan_stage3.log",
    benchmark:
        "results/benchmarks/train_gan_stage3.tsv"


rule sample_gan:
    input:
        generator="results/models/gan/stage3/model.ckpt",
        autoencoder="results/models/autoencoder/autoencoder.ckpt",
    output:
        table="results/generate/candidates.parquet",
        quarantine="results/generate/candidates.parquet.quarantine.csv",
    params:
        options=lambda wc: cli_options(n=GAN["sample"]["n"], seed=config["seed"]),
    log:
        "results/logs/sample_gan.log",
    benchmark:
        "results/benchmarks/sample_gan.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen generate gan --generator {input.generator:q} --autoencoder {input.autoencoder:q}"
        " --out {output.table:q} --threads {threads} {params.options} > {log:q} 2>&1"
