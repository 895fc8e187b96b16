# DFT validation: Quantum ESPRESSO (spin-orbit, 2D Coulomb cutoff) -> Wannier90 -> Z2, spin
# Chern and edge states, for every selected candidate and the controls (topogen dft ...).
#
#   dft_pseudos                       the pseudopotential family, checksummed, once
#   dft_control / dft_candidates      candidate files: controls (known Z2) / the checkpoint,
#                                     which turns dft.candidates into one file per structure
#   dft_relax -> dft_scf -> dft_nscf -> wannierize -> invariants, edge_states
#                                     per candidate, in results/dft/{cand}/ (the steps' state
#                                     lives there: a rerun resumes pw.x attempts)
#   dft_summary                       every verdict -> results/dft/summary.{csv,png}
#
# A candidate that fails for a reason of its own (pw.x not converging after every handler, no
# Wannier model, no valid 2D cell) still gets every output above: the step that failed writes
# {cand}/failed.json and exits 0, the later ones write records saying so, `invariants` a
# `failed` verdict and `edge_states` a plot saying why, so dft_summary always runs.
#   dft_controls                      the controls alone -> results/dft/controls.csv; fails
#                                     unless each gives its expected Z2 (no screening needed)
#
# MPI: `tasks` (MPI tasks), `pools` (pw.x -nk) and `mpi` (launcher: auto = srun under SLURM,
# else mpirun) are resources; locally they follow `threads` (default 1: serial jobs, so two
# candidates run at once on two cores; `--set-threads dft_scf=2` gives 2 tasks in 2 pools),
# on SLURM the profile sets them. pw.x stops cleanly before `runtime` (max_seconds) and a
# resubmitted job restarts it. OpenMP threads of QE: 1 per task (DFT_RESOURCES, common.smk).

wildcard_constraints:
    cand=r"[A-Za-z0-9_.\-]+",


localrules:
    dft_pseudos,
    dft_control,
    dft_candidates,
    dft_summary,
    dft_controls,


rule dft_pseudos:
    output:
        "results/dft/pseudos.json",
    params:
        options=lambda wc: dft_pseudo_options(),
    log:
        "results/logs/dft/dft_pseudos.log",
    benchmark:
        "results/benchmarks/dft/dft_pseudos.tsv"
    conda:
        "../../envs/dft.yaml"
    threads: 1
    shell:
        "topogen dft pseudos --out {output:q} {params.options} > {log:q} 2>&1"


rule dft_control:
    input:
        labels=config["data"]["prototypes"]["labels"],
    output:
        "results/dft/controls/{cand}.json",
    params:
        name=lambda wc: DFT_CONTROLS[wc.cand],
    wildcard_constraints:
        cand="|".join(DFT_CONTROLS) or "no-control",
    log:
        "results/logs/dft/dft_control_{cand}.log",
    benchmark:
        "results/benchmarks/dft/dft_control_{cand}.tsv"
    conda:
        "../../envs/dft.yaml"
    threads: 1
    shell:
        "topogen dft control {params.name:q} --labels {input.labels:q} --out {output:q}"
        " > {log:q} 2>&1"


checkpoint dft_candidates:
    input:
        dft_tables(),
    output:
        directory("results/dft/selected"),
    log:
        "results/logs/dft/dft_candidates.log",
    benchmark:
        "results/benchmarks/dft/dft_candidates.tsv"
    conda:
        "../../envs/dft.yaml"
    threads: 1
    shell:
        "topogen dft candidates {input:q} --out-dir {output:q} > {log:q} 2>&1"


rule dft_relax:
    input:
        candidate=dft_candidate,
        pseudos="results/dft/pseudos.json",
    output:
        "results/dft/{cand}/relaxed.json",
    params:
        options=lambda wc: dft_options(),
        workdir=subpath(output[0], parent=True),
        launch=dft_launch,
    log:
        "results/logs/dft/dft_relax_{cand}.log",
    benchmark:
        "results/benchmarks/dft/dft_relax_{cand}.tsv"
    conda:
        "../../envs/dft.yaml"
    threads: 1
    resources:
        **DFT_RESOURCES,
    shell:
        "topogen dft relax {input.candidate:q} --pseudos {input.pseudos:q}"
        " --workdir {params.workdir:q} --out {output:q} {params.launch}"
        " {params.options} > {log:q} 2>&1"


rule dft_scf:
    input:
        candidate="results/dft/{cand}/relaxed.json",
        pseudos="results/dft/pseudos.json",
    output:
        "results/dft/{cand}/scf.json",
    params:
        options=lambda wc: dft_options(),
        workdir=subpath(output[0], parent=True),
        launch=dft_launch,
    log:
        "results/logs/dft/dft_scf_{cand}.log",
    benchmark:
        "results/benchmarks/dft/dft_scf_{cand}.tsv"
    conda:
        "../../envs/dft.yaml"
    threads: 1
    resources:
        **DFT_RESOURCES,
    shell:
        "topogen dft scf {input.candidate:q} --pseudos {input.pseudos:q}"
        " --workdir {params.workdir:q} --out {output:q} --after {input.candidate:q}"
        " {params.launch} {params.options} > {log:q} 2>&1"


rule dft_nscf:
    input:
        candidate="results/dft/{cand}/relaxed.json",
        pseudos="results/dft/pseudos.json",
        scf="results/dft/{cand}/scf.json",
    output:
        "results/dft/{cand}/nscf.json",
    params:
        options=lambda wc: dft_options(),
        workdir=subpath(output[0], parent=True),
        launch=dft_launch,
    log:
        "results/logs/dft/dft_nscf_{cand}.log",
    benchmark:
        "results/benchmarks/dft/dft_nscf_{cand}.tsv"
    conda:
        "../../envs/dft.yaml"
    threads: 1
    resources:
        **DFT_RESOURCES,
    shell:
        "topogen dft nscf {input.candidate:q} --pseudos {input.pseudos:q}"
        " --workdir {params.workdir:q} --out {output:q} --after {input.scf:q}"
        " {params.launch} {params.options} > {log:q} 2>&1"


rule wannierize:
    input:
        candidate="results/dft/{cand}/relaxed.json",
        pseudos="results/dft/pseudos.json",
        nscf="results/dft/{cand}/nscf.json",
    output:
        "results/dft/{cand}/wannier.json",
    params:
        options=lambda wc: dft_options(),
        workdir=subpath(output[0], parent=True),
        launch=dft_launch,
    log:
        "results/logs/dft/wannierize_{cand}.log",
    benchmark:
        "results/benchmarks/dft/wannierize_{cand}.tsv"
    conda:
        "../../envs/dft.yaml"
    threads: 1
    resources:
        **DFT_RESOURCES,
    shell:
        "topogen dft wannierize {input.candidate:q} --pseudos {input.pseudos:q}"
        " --workdir {params.workdir:q} --out {output:q} --after {input.nscf:q}"
        " {params.launch} {params.options} > {log:q} 2>&1"


rule invariants:
    input:
        candidate="results/dft/{cand}/relaxed.json",
        pseudos="results/dft/pseudos.json",
        wannier="results/dft/{cand}/wannier.json",
    output:
        "results/dft/{cand}/verdict.json",
    params:
        options=lambda wc: dft_options(),
        workdir=subpath(output[0], parent=True),
    log:
        "results/logs/dft/invariants_{cand}.log",
    benchmark:
        "results/benchmarks/dft/invariants_{cand}.tsv"
    conda:
        "../../envs/dft.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "topogen dft invariants {input.candidate:q} --pseudos {input.pseudos:q}"
        " --workdir {params.workdir:q} --out {output:q} --after {input.wannier:q}"
        " --mpi none {params.options} > {log:q} 2>&1"


rule edge_states:
    input:
        "results/dft/{cand}/wannier.json",
    output:
        plot=report(
            "results/dft/{cand}/edge_states.png",
            caption="../report/edge_states.rst",
            category="DFT validation",
            subcategory="edge states",
        ),
        data="results/dft/{cand}/edge_states.npz",
    params:
        options=lambda wc: cli_options(**DFT["edge_states"]),
    log:
        "results/logs/dft/edge_states_{cand}.log",
    benchmark:
        "results/benchmarks/dft/edge_states_{cand}.tsv"
    conda:
        "../../envs/dft.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    shell:
        "topogen dft edge-states {input:q} --plot {output.plot:q} --data {output.data:q}"
        " {params.options} > {log:q} 2>&1"


rule candidate_chgnet:
    input:
        unpack(lambda wc: chgnet_model()),
        candidate=dft_candidate,
        generated=lambda wc: expand("results/generate/{g}/candidates.parquet", g=GENERATORS),
    output:
        data="results/candidates/{cand}/chgnet.json",
        plot=report(
            "results/candidates/{cand}/chgnet.png",
            caption="../report/candidate_chgnet.rst",
            category="Candidates",
            subcategory="CHGNet relaxation and phonons",
        ),
    params:
        options=lambda wc: cli_options(**SCREEN["funnel"]),
        model=lambda wc, input: cli_options(chgnet_model=input.get("chgnet_model")),
    log:
        "results/logs/dft/candidate_chgnet_{cand}.log",
    benchmark:
        "results/benchmarks/dft/candidate_chgnet_{cand}.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "topogen screen inspect {input.candidate:q} --generated {input.generated:q}"
        " --out {output.data:q} --plot {output.plot:q} --threads {threads} {params.model}"
        " {params.options} > {log:q} 2>&1"


rule candidate_card:
    input:
        verdict="results/dft/{cand}/verdict.json",
        candidate=dft_candidate,
        relaxed="results/dft/{cand}/relaxed.json",
        edge_plot="results/dft/{cand}/edge_states.png",
        chgnet_plot="results/candidates/{cand}/chgnet.png",
    output:
        card="results/candidates/{cand}/card.md",
        picture=report(
            "results/candidates/{cand}/structure.png",
            caption="../report/candidate_structure.rst",
            category="Candidates",
            subcategory="structures",
        ),
        flow=report(
            "results/candidates/{cand}/wannier_flow.png",
            caption="../report/wannier_flow.rst",
            category="DFT validation",
            subcategory="Wannier-centre flow",
        ),
        bands=report(
            "results/candidates/{cand}/bands.png",
            caption="../report/dft_wannier_bands.rst",
            category="DFT validation",
            subcategory="DFT vs Wannier bands",
        ),
        spin=report(
            "results/candidates/{cand}/spin_flow.png",
            caption="../report/spin_flow.rst",
            category="DFT validation",
            subcategory="spin-Chern spectra",
        ),
    log:
        "results/logs/dft/candidate_card_{cand}.log",
    benchmark:
        "results/benchmarks/dft/candidate_card_{cand}.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen dft card {input.verdict:q} --candidate {input.candidate:q}"
        " --relaxed {input.relaxed:q} --edge-plot {input.edge_plot:q} --out {output.card:q}"
        " --picture {output.picture:q} --flow {output.flow:q} --bands {output.bands:q}"
        " --spin {output.spin:q} --chgnet-plot {input.chgnet_plot:q} > {log:q} 2>&1"


rule candidate_cards:
    input:
        verdicts=lambda wc: dft_results("verdict.json", [*DFT_CONTROLS, *dft_selected(wc)]),
        cards=lambda wc: expand(
            "results/candidates/{cand}/card.md", cand=[*DFT_CONTROLS, *dft_selected(wc)]
        ),
        figures=lambda wc: expand(
            "results/candidates/{cand}/{figure}.png",
            cand=[*DFT_CONTROLS, *dft_selected(wc)],
            figure=("bands", "spin_flow", "chgnet"),
        ),  # so that a workflow updated after a run draws the figures the report shows
    output:
        "results/candidates/index.md",
    log:
        "results/logs/dft/candidate_cards.log",
    benchmark:
        "results/benchmarks/dft/candidate_cards.tsv"
    conda:
        "../../envs/ml.yaml"
    threads: 1
    shell:
        "topogen dft cards-index --verdicts {input.verdicts:q} --cards {input.cards:q}"
        " --out {output:q} > {log:q} 2>&1"


rule dft_summary:
    input:
        verdicts=lambda wc: dft_results("verdict.json", [*DFT_CONTROLS, *dft_selected(wc)]),
        edge_states=lambda wc: dft_results(
            "edge_states.png", [*DFT_CONTROLS, *dft_selected(wc)]
        ),
    output:
        table="results/dft/summary.csv",
        plot=report(
            "results/dft/summary.png",
            caption="../report/dft_summary.rst",
            category="DFT validation",
        ),
        html=report(
            "results/dft/summary.html",
            caption="../report/dft_table.rst",
            category="DFT validation",
        ),
    log:
        "results/logs/dft/dft_summary.log",
    benchmark:
        "results/benchmarks/dft/dft_summary.tsv"
    conda:
        "../../envs/dft.yaml"
    threads: 1
    shell:
        "topogen dft summary {input.verdicts:q} --out {output.table:q} --plot {output.plot:q}"
        " --html {output.html:q} > {log:q} 2>&1"


rule dft_controls:
    input:
        verdicts=dft_results("verdict.json", DFT_CONTROLS),
        edge_states=dft_results("edge_states.png", DFT_CONTROLS),
    output:
        "results/dft/controls.csv",
    log:
        "results/logs/dft/dft_controls.log",
    benchmark:
        "results/benchmarks/dft/dft_controls.tsv"
    conda:
        "../../envs/dft.yaml"
    threads: 1
    shell:
        "topogen dft summary {input.verdicts:q} --out {output:q} --check-controls > {log:q} 2>&1"
