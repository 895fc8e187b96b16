# The tight-binding network for periodic metamaterials (topogen.models.tbnn; Peano, Sapper,
# Marquardt, PRX 11, 021052 (2021)): a branch beside the crystal generators. tbnn_data
# draws random C6-symmetric step potentials and solves them exactly (tbnn.sets: train on
# the training wedge grid, valid on a finer one); train_tbnn fits the network; tbnn_evaluate
# writes its accuracy, label accuracy and speed-up over the Lanczos solver.


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
            "results/tbnn/bands.png",
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
