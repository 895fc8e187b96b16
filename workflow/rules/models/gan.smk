# Generator "gan": the three-stage GAN on crystal images (topogen.models.gan3), Tyner 2025.
# train_gan_stage1 -> train_gan_stage2 -> train_gan_stage3 (each starts from the previous
# stage's model) -> sample_gan writes results/generate/gan/candidates.parquet. Stage 3 also
# writes metrics.json: its model re-scored on fresh samples (the metric of record).
# GPU rules on clusters: `gpu` comes from the profile's set-resources (--gpus), else auto.


rule train_gan_stage1:
    input:
        images="results/encode/images.pt",
        table="results/data/structures.parquet",
    output:
        model="results/models/gan/stage1/model.ckpt",
        metrics="results/models/gan/stage1/metrics.csv",
        plot=report(
            "results/models/gan/stage1/metrics.png",
            caption="../../report/gan_stage1.rst",
            category="GAN",
        ),
    params:
        workdir="results/models/gan/stage1/work",
        options=lambda wc: gan_options(1),
        seed=config["seed"],
        extra="",
        gpus=gpus,
    log:
        "results/logs/train_gan_stage1.log",
    benchmark:
        "results/benchmarks/train_gan_stage1.tsv"
    conda:
        "../../../envs/ml.yaml"
    threads: 2
    shell:
        "topogen train gan --images {input.images:q} --table {input.table:q}"
        " --out {output.model:q} --metrics {output.metrics:q} --plot {output.plot:q}"
        " --workdir {params.workdir:q} --threads {threads} --gpus {params.gpus:q}"
        " --seed {params.seed} {params.options} {params.extra} > {log:q} 2>&1"


use rule train_gan_stage1 as train_gan_stage2 with:
    input:
        images="results/encode/images.pt",
        table="results/data/structures.parquet",
        init="results/models/gan/stage1/model.ckpt",
    output:
        model="results/models/gan/stage2/model.ckpt",
        metrics="results/models/gan/stage2/metrics.csv",
        plot=report(
            "results/models/gan/stage2/metrics.png",
            caption="../../report/gan_stage2.rst",
            category="GAN",
        ),
    params:
        workdir="results/models/gan/stage2/work",
        options=lambda wc: gan_options(2),
        seed=config["seed"],
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
        summary="results/models/gan/stage3/metrics.json",
        plot=report(
            "results/models/gan/stage3/metrics.png",
            caption="../../report/gan_stage3.rst",
            category="GAN",
        ),
    params:
        workdir="results/models/gan/stage3/work",
        options=lambda wc: gan_options(3),
        seed=config["seed"],
        extra=lambda wc, input, output: cli_options(
            init=input.init,
            autoencoder=input.autoencoder,
            band_gap_model=input.get("band_gap_model"),
            topology_model=input.get("topology_model"),
            chgnet_model=input.get("chgnet_model"),
            summary=output.summary,
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
        table="results/generate/gan/candidates.parquet",
        quarantine="results/generate/gan/candidates.parquet.quarantine.csv",
    params:
        seed=config["seed"],
        options=lambda wc: cli_options(**GAN.get("sample", {})),
    log:
        "results/logs/sample_gan.log",
    benchmark:
        "results/benchmarks/sample_gan.tsv"
    conda:
        "../../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen generate gan --generator {input.generator:q} --autoencoder {input.autoencoder:q}"
        " --out {output.table:q} --threads {threads} --seed {params.seed} {params.options}"
        " > {log:q} 2>&1"
