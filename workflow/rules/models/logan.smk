# Generator "logan": LoGAN (topogen.models.logan), Kovacs et al. 2024. train_logan trains one
# ensemble member (a seed x hyper-parameter set of train.logan.members) per target of
# train.logan.targets on the local environments of the merged structure table; sample_logan
# pools train.logan.sample.n samples of every member into
# results/generate/logan/candidates.parquet (the funnel's selection step is LoGAN's filter).


rule train_logan:
    input:
        table="results/data/structures.parquet",
    output:
        model="results/models/logan/{target}/{member}/model.ckpt",
    params:
        workdir="results/models/logan/{target}/{member}/work",
        options=logan_options,
        gpus=gpus,
    log:
        "results/logs/train_logan/{target}/{member}.log",
    benchmark:
        "results/benchmarks/train_logan/{target}/{member}.tsv"
    conda:
        "../../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen train logan --table {input.table:q} --out {output.model:q}"
        " --workdir {params.workdir:q} --threads {threads} --gpus {params.gpus:q}"
        " {params.options} > {log:q} 2>&1"


rule sample_logan:
    input:
        models=logan_models,
    output:
        table="results/generate/logan/candidates.parquet",
    params:
        options=cli_options(**LOGAN.get("sample", {})),
        seed=config["seed"],
    log:
        "results/logs/sample_logan.log",
    benchmark:
        "results/benchmarks/sample_logan.tsv"
    conda:
        "../../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen generate logan --models {input.models:q} --out {output.table:q}"
        " --seed {params.seed} --threads {threads} {params.options} > {log:q} 2>&1"
