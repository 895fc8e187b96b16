# Model "chgnet": CHGNet fine-tuned on DFT relaxations of Stage I samples, as Tyner et al. do
# before CHGNet serves as the Stage III oracle (topogen.models.chgnet.finetune).
#
#   sample_stage1                 chgnet.finetune.samples structures from the Stage I generator
#   finetune_candidates           the checkpoint: one candidate file per decoded sample, in
#                                 the canonical 2D frame (no slab, atoms too close: quarantined)
#   finetune_relax                pw.x relaxation per sample (topogen dft relax, with the
#                                 chgnet.finetune.dft settings), in results/finetune/dft/{sample}/
#   finetune_trajectory           its ionic steps (energy, forces, stress) -> trajectory.json
#   finetune_chgnet               CHGNet's trainer on every trajectory -> the model and the
#                                 held-out energy/force MAE before and after (metrics.json)
#
# The funnel (screen_chunk) and the Stage III oracle (train_gan_stage3) use the model when
# chgnet.model names it (results/models/chgnet/model.pt); chgnet.model: null keeps the
# pretrained CHGNet and nothing here runs. A sample whose relaxation fails for a reason of its
# own (pw.x not converging) still gets a trajectory: the steps that finished, or none.


wildcard_constraints:
    sample=r"[A-Za-z0-9_.\-]+",


localrules:
    finetune_candidates,
    finetune_trajectory,


rule sample_stage1:
    input:
        generator="results/models/gan/stage1/model.ckpt",
        autoencoder="results/models/autoencoder/autoencoder.ckpt",
    output:
        table="results/finetune/stage1_samples.parquet",
        quarantine="results/finetune/stage1_samples.parquet.quarantine.csv",
    params:
        n=FINETUNE.get("samples"),
        seed=config["seed"],
    log:
        "results/logs/finetune/sample_stage1.log",
    benchmark:
        "results/benchmarks/finetune/sample_stage1.tsv"
    conda:
        "../../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen generate gan --generator {input.generator:q} --autoencoder {input.autoencoder:q}"
        " --n {params.n} --out {output.table:q} --threads {threads} --seed {params.seed}"
        " > {log:q} 2>&1"


checkpoint finetune_candidates:
    input:
        "results/finetune/stage1_samples.parquet",
    output:
        directory("results/finetune/samples"),
    log:
        "results/logs/finetune/finetune_candidates.log",
    benchmark:
        "results/benchmarks/finetune/finetune_candidates.tsv"
    conda:
        "../../../envs/dft.yaml"
    threads: 1
    shell:
        "topogen dft candidates {input:q} --out-dir {output:q} --slabs > {log:q} 2>&1"


rule finetune_relax:
    input:
        candidate="results/finetune/samples/{sample}.json",
        pseudos="results/dft/pseudos.json",
    output:
        "results/finetune/dft/{sample}/relaxed.json",
    params:
        options=lambda wc: cli_options(**FINETUNE["dft"]),
        workdir=subpath(output[0], parent=True),
        launch=dft_launch,
    log:
        "results/logs/finetune/finetune_relax_{sample}.log",
    benchmark:
        "results/benchmarks/finetune/finetune_relax_{sample}.tsv"
    conda:
        "../../../envs/dft.yaml"
    threads: 1
    resources:
        **DFT_RESOURCES,
    shell:
        "topogen dft relax {input.candidate:q} --pseudos {input.pseudos:q}"
        " --workdir {params.workdir:q} --out {output:q} {params.launch}"
        " {params.options} > {log:q} 2>&1"


rule finetune_trajectory:
    input:
        candidate="results/finetune/samples/{sample}.json",
        relaxed="results/finetune/dft/{sample}/relaxed.json",
    output:
        "results/finetune/dft/{sample}/trajectory.json",
    params:
        workdir=subpath(output[0], parent=True),
    log:
        "results/logs/finetune/finetune_trajectory_{sample}.log",
    benchmark:
        "results/benchmarks/finetune/finetune_trajectory_{sample}.tsv"
    conda:
        "../../../envs/dft.yaml"
    threads: 1
    shell:
        "topogen dft trajectory {input.candidate:q} --workdir {params.workdir:q}"
        " --out {output:q} --after {input.relaxed:q} > {log:q} 2>&1"


rule finetune_chgnet:
    input:
        finetune_trajectories,
    output:
        model="results/models/chgnet/model.pt",
        metrics="results/models/chgnet/metrics.json",
    params:
        workdir="results/models/chgnet/work",
        options=lambda wc: cli_options(**FINETUNE.get("train", {})),
        seed=config["seed"],
    log:
        "results/logs/finetune/finetune_chgnet.log",
    benchmark:
        "results/benchmarks/finetune/finetune_chgnet.tsv"
    conda:
        "../../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen train chgnet --trajectories {input:q} --out {output.model:q}"
        " --metrics {output.metrics:q} --workdir {params.workdir:q} --threads {threads}"
        " --seed {params.seed} {params.options} > {log:q} 2>&1"
