# Report stage: summaries and plots for `snakemake --report`.


rule summarize_structures:
    input:
        "results/data/structures.parquet",
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
        "topogen report table {input:q} --plot {output.plot:q} --summary {output.summary:q}"
        " > {log:q} 2>&1"
