# Report stage: summaries and plots for `snakemake --report`.


rule summarize_structures:
    input:
        table="results/data/structures.parquet",
        quarantine=lambda wc: [
            f"{t}.quarantine.csv" for t in [*merged_tables(wc), "results/data/structures.parquet"]
        ],
    output:
        plot=report(
            "results/report/structures.png",
            caption="../report/structures.rst",
            category="Data",
        ),
        summary="results/report/structures.json",
    log:
        "results/logs/summarize_structures.log",
    benchmark:
        "results/benchmarks/summarize_structures.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen report table {input.table:q} --plot {output.plot:q} --summary {output.summary:q}"
        " --quarantine {input.quarantine:q} > {log:q} 2>&1"


rule plot_funnels:
    input:
        lambda wc: expand("results/screen/{name}/funnel.parquet", name=screened_sets()),
    output:
        plot=report(
            "results/report/funnels.png",
            caption="../report/funnels.rst",
            category="Screening",
        ),
        table="results/report/funnels.csv",
    params:
        names=lambda wc: " ".join(shlex.quote(n) for n in screened_sets()),
    log:
        "results/logs/plot_funnels.log",
    benchmark:
        "results/benchmarks/plot_funnels.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen report funnels {input:q} --names {params.names} --table {output.table:q}"
        " --plot {output.plot:q} > {log:q} 2>&1"


rule plot_training:
    input:
        lambda wc: trained_models()[wc.name][0],
    output:
        report(
            "results/report/training/{name}.png",
            caption="../report/training.rst",
            category="Training",
            subcategory="{name}",
        ),
    params:
        workdir=lambda wc: trained_models()[wc.name][1],
    log:
        "results/logs/plot_training/{name}.log",
    benchmark:
        "results/benchmarks/plot_training/{name}.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen report training {params.workdir:q} --model {input:q} --title {wildcards.name:q}"
        " --plot {output:q} > {log:q} 2>&1"
