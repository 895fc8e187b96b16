# Shared helpers: config validation and small input functions. No logic beyond that.
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from topogen.config_schema import config_problems

SCHEMA = Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"


_problems = config_problems(config, SCHEMA)
if _problems:
    raise WorkflowError(
        "the configuration (config/config.yaml plus any --configfile/--config overrides) "
        "does not match workflow/schemas/config.schema.yaml:\n" + "\n".join(_problems)
    )
validate(config, schema=str(SCHEMA))  # fills in the schema's defaults

DATA = config["data"]
SOURCES = ("prototypes", "c2db", "jarvis_c2db", "mp", "qm9", "tqc", "mc2d_gaps")

for _entry in DATA["merge"]:
    _name = _entry.removeprefix("import/")
    if _entry.startswith("import/") and _name not in DATA.get("imports", {}):
        raise WorkflowError(f"data.merge names {_entry!r}, but data.imports has no {_name!r}")
    if not _entry.startswith("import/") and _entry not in SOURCES:
        raise WorkflowError(
            f"data.merge names {_entry!r}: not a source ({', '.join(SOURCES)}) or import/<set>"
        )


wildcard_constraints:
    name=r"[A-Za-z0-9_\-]+",
    generator=r"[A-Za-z0-9_\-]+",
    chunk=r"[0-9]+",


def cli_options(**options):
    """Command-line flags of a config option section, the one way every rule renders them.

    The flag contract of `topogen` (its options are generated from the library's dataclasses):
    key ``foo_bar: v`` -> ``--foo-bar v``; ``true``/``false`` -> ``--foo-bar``/``--no-foo-bar``;
    a list -> ``--foo-bar a b``; ``null`` is left out (the library default applies). Values
    are shell-quoted. The config lists only values that differ deliberately from the
    defaults, which live in the library (``topogen <command> --help`` lists them).
    """
    parts = []
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if value is None:
            continue
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, (list, tuple)):
            parts.append(" ".join([flag, *(shlex.quote(str(v)) for v in value)]))
        else:
            parts.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(parts)


def download_options(source, key="url"):
    """`topogen download` options for data.<source>.<key>; a clear error when it is unset."""
    block = DATA[source]
    url = block.get(key)
    if not url:
        raise WorkflowError(
            f"data.{source}.{key} is not set: give a URL or the path of a local copy"
        )
    sha_key = f"{key.removesuffix('url')}sha256"
    return cli_options(
        url=url,
        sha256=block.get(sha_key),
        timeout=DATA["download"]["timeout"],
        retries=DATA["download"]["retries"],
        source=source,
        config_key=f"data.{source}.{key}",
        quiet=True,
    )


def mc2d_gaps_file(wildcards):
    """The full MC2D download when data.mc2d_gaps.url is set, else the shipped gap table."""
    if DATA["mc2d_gaps"].get("url"):
        return "results/data/raw/mc2d/structures.json"
    return DATA["mc2d_gaps"]["file"]


def mp_query_options():
    return cli_options(**{k: v for k, v in DATA["mp"].items()})


def qm9_raw_files(wildcards):
    """The downloaded QM9 archive, or nothing when qm9pack is used (data.qm9.url: null)."""
    if DATA["qm9"].get("url"):
        return {
            "archive": "results/data/raw/qm9/dsgdb9nsd.xyz.tar.bz2",
            "uncharacterized": "results/data/raw/qm9/uncharacterized.txt",
        }
    return {}


def qm9_normalize_options(input):
    if input:
        options = cli_options(uncharacterized=input.uncharacterized, limit=DATA["qm9"]["limit"])
        return f"{options} {shlex.quote(input.archive)}"
    return cli_options(limit=DATA["qm9"]["limit"])


def topoa_files():
    folder = Path(DATA["topoa"]["dir"])
    return [folder / f"{name}_ccmp.txt" for name in ("ti", "tci", "case1", "case3")]


def prototype_options():
    """`topogen data prototypes` options: data.prototypes without its labels file."""
    block = {k: v for k, v in DATA["prototypes"].items() if k != "labels"}
    return cli_options(**block, seed=config["seed"])


def merged_tables(wildcards):
    return [f"results/data/{entry}.parquet" for entry in DATA["merge"]]


# --- generators and the screening funnel, per generator ---
GENERATORS = config["generators"]
SCREEN = config["screen"]
SCREEN_CHUNKS = [f"{i:03d}" for i in range(SCREEN["chunks"])]


def screened_sets():
    """Names screened under results/screen/<name>/: the generators, then screen.candidates."""
    return [*GENERATORS, *(k for k in SCREEN["candidates"] if k not in GENERATORS)]


def screen_candidates(wildcards):
    """The table a funnel screens: screen.candidates.<name>, else the generator's output."""
    default = f"results/generate/{wildcards.generator}/candidates.parquet"
    return SCREEN["candidates"].get(wildcards.generator, default)


def screen_models(wildcards):
    """The models the config names (Snakemake then trains them first): chgnet_model (the
    force field, chgnet.model) and gap_model (CGCNN)."""
    models = chgnet_model()
    if SCREEN.get("band_gap_model"):
        models["gap_model"] = SCREEN["band_gap_model"]
    return models


def screen_model_options(input):
    return cli_options(chgnet_model=input.get("chgnet_model"), band_gap_model=input.get("gap_model"))


def topology_model(wildcards):
    """score_topology's model: screen.topology.model (e.g. the CrystalBERT classifier of
    train_topology_classifier); none: the step is skipped."""
    model = SCREEN["topology"].get("model")
    return {"model": model} if model else {}


# --- training stages ---
CGCNN = config["train"]["cgcnn"]
CGCNN_PATHS = ("table",)  # inputs of train_cgcnn, not options


def cgcnn_inputs(wildcards):
    """train.cgcnn.table: `structures` (the merged table) or another table of results/data/
    (e.g. mc2d_gaps, the MC2D gaps) with the graphs encoded from it."""
    table = CGCNN.get("table") or "structures"
    graphs = "results/encode/graphs.pt" if table == "structures" else f"results/encode/{table}/graphs.pt"
    return {"graphs": graphs, "table": f"results/data/{table}.parquet"}


def cgcnn_options():
    return cli_options(**{k: v for k, v in CGCNN.items() if k not in CGCNN_PATHS})


CRYSTALBERT = config["train"].get("crystalbert", {"classifier": {"table": None}})
CRYSTALBERT.setdefault("pretrain", {})


def crystalbert_options(rule):
    """`topogen train ...` flags: train.crystalbert.options (the model) + the rule's block
    (pretrain or classifier) without its table."""
    block = {k: v for k, v in CRYSTALBERT[rule].items() if k != "table"}
    return cli_options(**{**CRYSTALBERT.get("options", {}), **block})


def crystalbert_pretrained(wildcards):
    """The pretrained CrystalBERT the classifier starts from (none without a table)."""
    if CRYSTALBERT["pretrain"].get("table"):
        return {"pretrained": "results/models/crystalbert/pretrained.ckpt"}
    return {}


def select_options():
    """screen.selection, and rank_by topology_score when the topology step ranks."""
    options = dict(SCREEN["selection"])
    if SCREEN["topology"].get("model") and SCREEN["topology"].get("mode") == "rank":
        options.setdefault("rank_by", "topology_score")
    return options


def dft_slots(wildcards):
    """select_dft's k for one screened set: dft.top_k_per_set.<set>, else dft.top_k
    candidates, picked by k-means (all survivors when fewer)."""
    return DFT.get("top_k_per_set", {}).get(wildcards.generator, DFT["top_k"])

def gpus(wildcards, resources):
    """The rule's `gpu` resource (set by a cluster profile) for `--gpus`; auto without one."""
    return resources.get("gpu", "auto")


# --- dft stage ---
DFT = config["dft"]
# Resources of a pw.x job (dft.smk, and the relaxations of models/chgnet.smk).
DFT_RESOURCES = dict(
    tasks=lambda wildcards, threads: threads,
    pools=lambda wildcards, threads: threads,
    mpi="auto",
    mem_mb=4000,
    runtime=1440,
)
# Control folders (results/dft/control-<name>/) -> control names of topogen.dft.candidates.
if DFT["controls"].get("qsh") and DFT["controls"].get("qsh") == DFT["controls"].get("trivial"):
    raise WorkflowError(
        f"dft.controls: qsh and trivial are both {DFT['controls']['qsh']!r}; the two controls "
        "check opposite Z2 (1 and 0), so they must be different structures (null skips one)"
    )
DFT_CONTROLS = {f"control-{name}": name for name in DFT["controls"].values() if name}


def dft_options():
    """The chain settings, identical for every step of every candidate."""
    return cli_options(**DFT["settings"])


def dft_pseudo_options():
    return cli_options(**DFT["pseudos"])


def dft_tables():
    """The structure tables of dft.candidates (a path or a list); null: every screened set's
    selection, results/screen/<name>/selected.parquet."""
    tables = DFT.get("candidates")
    if tables is None:
        return [f"results/screen/{name}/selected.parquet" for name in screened_sets()]
    return [tables] if isinstance(tables, str) else list(tables)


def dft_candidate(wildcards):
    """A candidate's file: a control's, or one that the dft_candidates checkpoint wrote."""
    if wildcards.cand in DFT_CONTROLS:
        return f"results/dft/controls/{wildcards.cand}.json"
    return f"results/dft/selected/{wildcards.cand}.json"


def candidate_names(checkpoint):
    """Names of the candidate files a `topogen dft candidates` checkpoint wrote (its
    index.csv), known once it ran."""
    import csv

    index = Path(checkpoint.get().output[0]) / "index.csv"
    with open(index, newline="") as fh:
        return [row["candidate"] for row in csv.DictReader(fh)]


def dft_selected(wildcards):
    return candidate_names(checkpoints.dft_candidates)


def dft_results(name, candidates):
    return expand(f"results/dft/{{cand}}/{name}", cand=candidates)


def dft_launch(wildcards, resources):
    """MPI options of a DFT step from its resources; pw.x stops before `runtime` minutes."""
    return cli_options(
        tasks=resources.tasks,
        pools=resources.pools,
        mpi=resources.mpi,
        time_limit=resources.runtime,
    )


# --- GAN stages (workflow/rules/models/gan.smk) ---
GAN = config["train"]["gan"]
GAN_PATHS = ("band_gap_model", "topology_model")  # inputs of a stage, not options


def gan_options(stage):
    """`topogen train gan` options of one stage: train.gan's shared keys + its stage block."""
    block = {k: v for k, v in GAN.get(f"stage{stage}", {}).items() if k not in GAN_PATHS}
    shared = {k: v for k, v in GAN.items() if not k.startswith("stage") and k != "sample"}
    return cli_options(stage=stage, **shared, **block)


def gan_stage3_inputs(wildcards):
    """The oracle's models: its force field (chgnet.model), band-gap and topology models."""
    block = GAN.get("stage3", {})
    return chgnet_model() | {k: block[k] for k in GAN_PATHS if block.get(k)}


# --- LoGAN (models/logan.smk): one member per target x seed x hyper-parameter set ---
LOGAN = config["train"].get("logan", {})


def logan_members():
    """Member ids "s<seed>-h<k>" of the ensemble (the same for every target)."""
    members = LOGAN.get("members", {})
    return [
        f"s{seed}-h{k}"
        for seed in members.get("seeds", [])
        for k in range(len(members.get("sets", [])))
    ]


def logan_options(wildcards):
    """`topogen train logan` flags of one member: target, shared options, its set, seed."""
    target = LOGAN["targets"][wildcards.target]
    seed, k = wildcards.member[1:].split("-h")
    options = {**LOGAN.get("options", {}), **LOGAN["members"]["sets"][int(k)]}
    return cli_options(
        formula=target["formula"], lattice=target["lattice"], seed=int(seed), **options
    )


def logan_models(wildcards):
    return [
        f"results/models/logan/{target}/{member}/model.ckpt"
        for target in LOGAN.get("targets", {})
        for member in logan_members()
    ]


# --- self-supervised generator (models/ssl.smk) ---
SSL = config["train"].get("ssl", {"table": "results/data/structures.parquet"})


def ssl_finetune_options(wildcards):
    """`topogen ssl finetune` flags of one head: train.ssl.finetune.<head>."""
    return cli_options(**SSL.get("finetune", {}).get(wildcards.head, {}))


# --- tight-binding network (models/tbnn.smk) ---
TBNN = config.get("tbnn", {"activate": False})


def tbnn_data_options(wildcards):
    """`topogen tbnn data` flags of one set: tbnn.data (shared) + tbnn.sets.<set>."""
    return cli_options(**TBNN.get("data", {}), **TBNN["sets"][wildcards.set])


# --- CHGNet: the force field of the funnel and the Stage III oracle (models/chgnet.smk) ---
CHGNET = config.get("chgnet", {})
FINETUNE = CHGNET.get("finetune", {})


def chgnet_model():
    """chgnet.model as an input ({"chgnet_model": path}; finetune_chgnet builds
    results/models/chgnet/model.pt), or nothing: the pretrained CHGNet."""
    return {"chgnet_model": CHGNET["model"]} if CHGNET.get("model") else {}


def finetune_trajectories(wildcards):
    """The DFT trajectory of every Stage I sample of the finetune_candidates checkpoint."""
    names = candidate_names(checkpoints.finetune_candidates)
    return expand("results/finetune/dft/{sample}/trajectory.json", sample=names)


# --- rule all ---
# --- training curves (report.smk): every model the config trains besides the GAN stages,
# which plot their own; name -> (checkpoint, work folder)
def trained_models():
    crystalbert = "results/models/crystalbert/{}.ckpt"
    used = {SCREEN.get("band_gap_model"), SCREEN["topology"].get("model")}
    used.add(GAN.get("stage3", {}).get("topology_model"))
    models = {
        "autoencoder": (
            "results/models/autoencoder/autoencoder.ckpt",
            "results/models/autoencoder/work",
        )
    }
    if "results/models/cgcnn/model.ckpt" in used:
        models["cgcnn"] = ("results/models/cgcnn/model.ckpt", "results/models/cgcnn/work")
    if crystalbert.format("topology") in used:
        if crystalbert_pretrained(None):
            models["crystalbert-pretrain"] = (
                crystalbert.format("pretrained"),
                "results/models/crystalbert/work/pretrain",
            )
        models["crystalbert-topology"] = (
            crystalbert.format("topology"),
            "results/models/crystalbert/work/topology/final",  # cv/fold<k>: the folds
        )
    if TBNN.get("activate"):
        models["tbnn"] = ("results/models/tbnn/model.ckpt", "results/models/tbnn/work")
    if "ssl" in GENERATORS:
        for name in ("pretrain", "classifier", "regressor", "gan"):
            ckpt = "pretrained" if name == "pretrain" else name
            work = f"results/models/ssl/work/{name}"
            models[f"ssl-{name}"] = (f"results/models/ssl/{ckpt}.ckpt", work)
    if "logan" in GENERATORS:
        for model in logan_models(None):
            folder = str(Path(model).parent)
            name = "-".join(Path(folder).relative_to("results/models").parts)
            models[name] = (model, f"{folder}/work")
    return models


def all_targets():
    """What `snakemake` builds by default, from the config: the data, the encodings, and per
    generator its candidates and screening funnel; the DFT chain when dft.activate is set
    (and the controls' check when a control is configured)."""
    targets = [
        "results/data/structures.parquet",
        "results/report/structures.png",
        "results/encode/graphs.pt",
        "results/encode/tokens.pt",
        "results/models/autoencoder/metrics.json",
    ]
    for generator in GENERATORS:
        targets.append(f"results/generate/{generator}/candidates.parquet")
    for name in screened_sets():
        targets += expand(
            "results/screen/{name}/{table}.parquet",
            name=name,
            table=("funnel", "survivors", "selected"),
        )
    if screened_sets():
        targets.append("results/report/funnels.png")
    targets += expand("results/report/training/{name}.png", name=trained_models())
    if "ssl" in GENERATORS:
        targets += ["results/models/ssl/metrics.csv", "results/models/ssl/regressor.json"]
    if TBNN.get("activate"):
        outputs = ("metrics.json", "predicted_bands.png", "design.png", "explore.json")
        targets += [f"results/tbnn/{f}" for f in outputs]
    if config.get("dft", {}).get("activate"):
        targets += ["results/dft/summary.csv", "results/dft/summary.html"]
        targets.append("results/candidates/index.md")
        if DFT_CONTROLS:  # dft.controls all null: no control to check
            targets.append("results/dft/controls.csv")
    return targets
