# Screening stage, once per generator (results/screen/<generator>/, so success rates compare
# across generators): candidates -> validity, uniqueness/novelty, batched CHGNet relaxation,
# phonon stability, band gap (CGCNN) (topogen.screen.funnel), in screen.chunks chunks, then
# merged; score_topology adds the topology step (screen.topology: the CrystalBERT classifier
# as a filter or a ranking key, topogen.screen.topology) on the merged survivors, so a new
# classifier re-scores them without relaxing anything again; select_dft picks for DFT.
# The DAG has chunks + 4 jobs per generator, whatever the number of candidates.
# split_candidates puts every possible pair of duplicates (same reduced formula and number
# of sites) in the same chunk, so per-chunk uniqueness is uniqueness over all candidates.
# The funnel's options: screen.funnel (overrides of topogen.screen.funnel.FunnelOptions).


rule split_candidates:
    input:
        screen_candidates,
    output:
        expand(
            "results/screen/{{generator}}/chunks/{chunk}/candidates.parquet", chunk=SCREEN_CHUNKS
        ),
    log:
        "results/logs/screen/{generator}/split_candidates.log",
    benchmark:
        "results/benchmarks/screen/{generator}/split_candidates.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen screen split {input:q} --out {output:q} > {log:q} 2>&1"


rule screen_chunk:
    input:
        unpack(screen_models),
        candidates="results/screen/{generator}/chunks/{chunk}/candidates.parquet",
        training=SCREEN["training"],
    output:
        structures="results/screen/{generator}/chunks/{chunk}/screened.parquet",
        funnel="results/screen/{generator}/chunks/{chunk}/funnel.parquet",
        dos="results/screen/{generator}/chunks/{chunk}/phonon_dos.npz",
    params:
        options=lambda wc, input: cli_options(**SCREEN["funnel"]),
        models=lambda wc, input: screen_model_options(input),
    log:
        "results/logs/screen/{generator}/screen_chunk_{chunk}.log",
    benchmark:
        "results/benchmarks/screen/{generator}/screen_chunk_{chunk}.tsv"
    conda:
        "../../envs/ml.yaml"
    # One thread per chunk and many chunks at once: on shared or small CPU nodes, 2-thread
    # torch was 3-30x slower than 1 thread for CHGNet's small graphs.
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    shell:
        "topogen screen chunk {input.candidates:q} --training {input.training:q}"
        " --chunk {wildcards.chunk} --out {output.structures:q} --funnel {output.funnel:q}"
        " --dos {output.dos:q} --threads {threads} {params.models} {params.options}"
        " > {log:q} 2>&1"


rule merge_screen:
    input:
        funnel=expand(
            "results/screen/{{generator}}/chunks/{chunk}/funnel.parquet", chunk=SCREEN_CHUNKS
        ),
        structures=expand(
            "results/screen/{{generator}}/chunks/{chunk}/screened.parquet", chunk=SCREEN_CHUNKS
        ),
        dos=expand(
            "results/screen/{{generator}}/chunks/{chunk}/phonon_dos.npz", chunk=SCREEN_CHUNKS
        ),
    output:
        funnel="results/screen/{generator}/merged/funnel.parquet",
        survivors="results/screen/{generator}/merged/survivors.parquet",
        dos="results/screen/{generator}/phonon_dos.npz",
    log:
        "results/logs/screen/{generator}/merge_screen.log",
    benchmark:
        "results/benchmarks/screen/{generator}/merge_screen.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen screen merge --funnel-in {input.funnel:q} --structures-in {input.structures:q}"
        " --dos-in {input.dos:q} --funnel {output.funnel:q} --out {output.survivors:q}"
        " --dos {output.dos:q} > {log:q} 2>&1"


rule score_topology:
    input:
        unpack(topology_model),
        funnel="results/screen/{generator}/merged/funnel.parquet",
        survivors="results/screen/{generator}/merged/survivors.parquet",
    output:
        funnel="results/screen/{generator}/funnel.parquet",
        survivors="results/screen/{generator}/survivors.parquet",
    params:
        model=lambda wc, input: cli_options(model=input.get("model")),
        options=lambda wc: cli_options(
            **{k: v for k, v in SCREEN["topology"].items() if k != "model"}
        ),
    log:
        "results/logs/screen/{generator}/score_topology.log",
    benchmark:
        "results/benchmarks/screen/{generator}/score_topology.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen screen topology --funnel-in {input.funnel:q}"
        " --structures-in {input.survivors:q} --funnel {output.funnel:q}"
        " --out {output.survivors:q} --threads {threads} {params.model} {params.options}"
        " > {log:q} 2>&1"


rule select_dft:
    input:
        "results/screen/{generator}/survivors.parquet",
    output:
        "results/screen/{generator}/selected.parquet",
    params:
        seed=config["seed"],
        options=lambda wc: cli_options(slots=dft_slots(wc), **select_options()),
    log:
        "results/logs/screen/{generator}/select_dft.log",
    benchmark:
        "results/benchmarks/screen/{generator}/select_dft.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen screen select {input:q} --out {output:q} --seed {params.seed} {params.options}"
        " > {log:q} 2>&1"
