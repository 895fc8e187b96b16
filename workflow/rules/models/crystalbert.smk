# CrystalBERT (topogen.models.crystalbert), Xu, Qian, Wang et al.: a transformer over
# space-group, electron-count, element and CGCNN graph tokens. Not a generator: its topology
# classifier is the funnel's topology score (screen.topology.model, rule score_topology).
# pretrain_crystalbert regresses lattice parameters on train.crystalbert.pretrain.table;
# train_topology_classifier fine-tunes it on the topo2d labels of
# train.crystalbert.classifier.table (cross-validated first: metrics.json).


rule pretrain_crystalbert:
    input:
        table=CRYSTALBERT["pretrain"].get("table") or [],
    output:
        model="results/models/crystalbert/pretrained.ckpt",
        metrics="results/models/crystalbert/pretrained.json",
        quarantine="results/models/crystalbert/pretrained.ckpt.quarantine.csv",
    params:
        workdir="results/models/crystalbert/work/pretrain",
        seed=config["seed"],
        options=lambda wc: crystalbert_options("pretrain"),
        gpus=gpus,
    log:
        "results/logs/pretrain_crystalbert.log",
    benchmark:
        "results/benchmarks/pretrain_crystalbert.tsv"
    conda:
        "../../../envs/ml.yaml"
    threads: 2
    shell:
        "topogen train crystalbert --table {input.table:q} --out {output.model:q}"
        " --metrics {output.metrics:q} --workdir {params.workdir:q} --seed {params.seed}"
        " --threads {threads} --gpus {params.gpus:q} {params.options} > {log:q} 2>&1"


rule train_topology_classifier:
    input:
        unpack(crystalbert_pretrained),
        table=CRYSTALBERT["classifier"]["table"],
    output:
        model="results/models/crystalbert/topology.ckpt",
        metrics="results/models/crystalbert/topology.json",
        quarantine="results/models/crystalbert/topology.ckpt.quarantine.csv",
    params:
        workdir="results/models/crystalbert/work/topology",
        seed=config["seed"],
        pretrained=lambda wc, input: cli_options(pretrained=input.get("pretrained")),
        options=lambda wc: crystalbert_options("classifier"),
        gpus=gpus,
    log:
        "results/logs/train_topology_classifier.log",
    benchmark:
        "results/benchmarks/train_topology_classifier.tsv"
    conda:
        "../../../envs/ml.yaml"
    threads: 2
    shell:
        "topogen train topology-classifier --table {input.table:q} --out {output.model:q}"
        " --metrics {output.metrics:q} --workdir {params.workdir:q} --seed {params.seed}"
        " --threads {threads} --gpus {params.gpus:q} {params.pretrained} {params.options}"
        " > {log:q} 2>&1"
