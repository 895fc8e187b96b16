# The tight-binding network for periodic metamaterials (topogen.models.tbnn; Peano, Sapper,
# Marquardt, PRX 11, 021052 (2021)): a branch beside the crystal generators. tbnn_data
# draws random C6-symmetric step potentials and solves them exactly (tbnn.sets: train on
# the training wedge grid, valid on a finer one); train_tbnn fits the network; tbnn_evaluate
# writes its accuracy, label accuracy and speed-up over the Lanczos solver; tbnn_design
# finds the p/d band inversion of six holes by gradient descent through the network;
# tbnn_explore counts isolated band sets and fragile ones among random potentials.


rule tbnn_data:
    output:
        data="results/tbnn/data/{set}.npz",
    wildcard_constraints:
        set="train|valid",
    params:
        options=tbnn_data_options,
    log:
        "results/logs/tbnn_data/{set}.log",
    benchmark:
        "results/benchmarks/tbnn_data/{set}.tsv"
    conda:
        "../../../envs/ml.yaml"
    threads: 2
    shell:
        "topogen tbnn data --out {output.data:q} --threads {threads} {params.options}"
        " > {log:q} 2>&1"


rule train_tbnn:
    input:
        data="results/tbnn/data/train.npz",
    output:
        model="results/models/tbnn/model.ckpt",
    params:
        workdir="results/models/tbnn/work",
        options=cli_options(**TBNN.get("train", {})),
        gpus=gpus,
    log:
        "results/logs/train_tbnn.log",
    benchmark:
        "results/benchmarks/train_tbnn.tsv"
    conda:
        "../../../envs/ml.yaml"
    threads: 2
    shell:
        "topogen tbnn train --data {input.data:q} --out {output.model:q}"
        " --workdir {params.workdir:q} --threads {threads} --gpus {params.gpus:q}"
        " {params.options} > {log:q} 2>&1"


rule tbnn_evaluate:
    input:
        model="results/models/tbnn/model.ckpt",
        data="results/tbnn/data/valid.npz",
    output:
        metrics="results/tbnn/metrics.json",
        plot=report(
            "results/tbnn/predicted_bands.png",
            caption="../../report/tbnn_bands.rst",
            category="Metamaterials",
        ),
    params:
        options=cli_options(**TBNN.get("evaluate", {})),
    log:
        "results/logs/tbnn_evaluate.log",
    benchmark:
        "results/benchmarks/tbnn_evaluate.tsv"
    conda:
        "../../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen tbnn evaluate --model {input.model:q} --data {input.data:q}"
        " --metrics {output.metrics:q} --plot {output.plot:q} --threads {threads}"
        " {params.options} > {log:q} 2>&1"


rule tbnn_design:
    input:
        model="results/models/tbnn/model.ckpt",
    output:
        result="results/tbnn/design.json",
        plot=report(
            "results/tbnn/design.png",
            caption="../../report/tbnn_design.rst",
            category="Metamaterials",
        ),
    params:
        options=cli_options(**TBNN.get("design", {})),
    log:
        "results/logs/tbnn_design.log",
    benchmark:
        "results/benchmarks/tbnn_design.tsv"
    conda:
        "../../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen tbnn design --model {input.model:q} --out {output.result:q}"
        " --plot {output.plot:q} --threads {threads} {params.options} > {log:q} 2>&1"


rule tbnn_explore:
    input:
        model="results/models/tbnn/model.ckpt",
        valid="results/tbnn/data/valid.npz",
    output:
        result="results/tbnn/explore.json",
    params:
        options=cli_options(**TBNN.get("explore", {})),
        seed=config["seed"],
    log:
        "results/logs/tbnn_explore.log",
    benchmark:
        "results/benchmarks/tbnn_explore.tsv"
    conda:
        "../../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen tbnn explore --model {input.model:q} --valid {input.valid:q}"
        " --out {output.result:q} --seed {params.seed} --threads {threads} {params.options}"
        " > {log:q} 2>&1"
