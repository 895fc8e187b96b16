# Generator "ssl": the self-supervised crystal generator (topogen.models.ssl; Liu, Chen et
# al., iScience 2024). pretrain_ssl fits the masked-species + denoising model on
# train.ssl.table; finetune_ssl puts a classification (the GAN's starting discriminator) and
# a regression head on its backbone; train_ssl_gan runs the GAN stage; ssl_metrics measures
# validity, similarity and novelty of both generators on the held-out crystals;
# sample_ssl_gan replaces one species of crystals of train.ssl.sample.table and re-makes the
# positions, into results/generate/ssl/candidates.parquet for the funnel.


rule pretrain_ssl:
    input:
        table=SSL["table"],
    output:
        model="results/models/ssl/pretrained.ckpt",
    params:
        workdir="results/models/ssl/work/pretrain",
        options=cli_options(**SSL.get("pretrain", {})),
        gpus=gpus,
    log:
        "results/logs/ssl/pretrain.log",
    benchmark:
        "results/benchmarks/ssl/pretrain.tsv"
    conda:
        "../../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen ssl pretrain --table {input.table:q} --out {output.model:q}"
        " --workdir {params.workdir:q} --threads {threads} --gpus {params.gpus:q}"
        " {params.options} > {log:q} 2>&1"


rule finetune_ssl:
    input:
        table=SSL["table"],
        pretrained="results/models/ssl/pretrained.ckpt",
    output:
        model="results/models/ssl/{head}.ckpt",
        metrics="results/models/ssl/{head}.json",
    wildcard_constraints:
        head="classifier|regressor",
    params:
        workdir="results/models/ssl/work/{head}",
        options=ssl_finetune_options,
        gpus=gpus,
    log:
        "results/logs/ssl/finetune_{head}.log",
    benchmark:
        "results/benchmarks/ssl/finetune_{head}.tsv"
    conda:
        "../../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen ssl finetune --table {input.table:q} --pretrained {input.pretrained:q}"
        " --out {output.model:q} --metrics {output.metrics:q} --workdir {params.workdir:q}"
        " --threads {threads} --gpus {params.gpus:q} {params.options} > {log:q} 2>&1"


rule train_ssl_gan:
    input:
        table=SSL["table"],
        generator="results/models/ssl/pretrained.ckpt",
        classifier="results/models/ssl/classifier.ckpt",
    output:
        model="results/models/ssl/gan.ckpt",
    params:
        workdir="results/models/ssl/work/gan",
        options=cli_options(**SSL.get("gan", {})),
        gpus=gpus,
    log:
        "results/logs/ssl/gan.log",
    benchmark:
        "results/benchmarks/ssl/gan.tsv"
    conda:
        "../../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen ssl gan --table {input.table:q} --generator {input.generator:q}"
        " --classifier {input.classifier:q} --out {output.model:q} --workdir {params.workdir:q}"
        " --threads {threads} --gpus {params.gpus:q} {params.options} > {log:q} 2>&1"


rule ssl_metrics:
    input:
        table=SSL["table"],
        pretrained="results/models/ssl/pretrained.ckpt",
        gan="results/models/ssl/gan.ckpt",
    output:
        metrics="results/models/ssl/metrics.csv",
        plot=report(
            "results/models/ssl/generation_metrics.png",
            caption="../../report/ssl_metrics.rst",
            category="Generators",
        ),
    params:
        options=cli_options(**SSL.get("metrics", {})),
        seed=config["seed"],
    log:
        "results/logs/ssl/metrics.log",
    benchmark:
        "results/benchmarks/ssl/metrics.tsv"
    conda:
        "../../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen ssl metrics --table {input.table:q} --models pretrained={input.pretrained:q}"
        " gan={input.gan:q} --out {output.metrics:q} --plot {output.plot:q} --seed {params.seed} --threads {threads}"
        " {params.options} > {log:q} 2>&1"


rule sample_ssl_gan:
    input:
        model="results/models/ssl/gan.ckpt",
        table=SSL.get("sample", {}).get("table", "results/data/structures.parquet"),
    output:
        table="results/generate/ssl/candidates.parquet",
    params:
        options=cli_options(**{k: v for k, v in SSL.get("sample", {}).items() if k != "table"}),
        seed=config["seed"],
    log:
        "results/logs/sample_ssl_gan.log",
    benchmark:
        "results/benchmarks/sample_ssl_gan.tsv"
    conda:
        "../../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen ssl sample --model {input.model:q} --table {input.table:q}"
        " --out {output.table:q} --seed {params.seed} --threads {threads} {params.options}"
        " > {log:q} 2>&1"
