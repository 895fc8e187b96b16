# Shared helpers: config validation and small input functions. No logic beyond that.
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as exc:
    raise WorkflowError(
        "the configuration (config/config.yaml plus any --configfile/--config overrides) "
        f"does not match workflow/schemas/config.schema.yaml:\n{exc}"
    ) from exc

DATA = config["data"]
SOURCES = ("prototypes", "c2db", "jarvis_c2db", "mp", "qm9", "tqc")

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
    chunk=r"[0-9]+",


def cli_options(**options):
    """Render keyword options as quoted command-line flags; None and False are left out."""
    parts = []
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if value is None or value is False:
            continue
        if value is True:
            parts.append(flag)
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
    block = DATA["prototypes"]
    return cli_options(
        max_candidates=block["max_candidates"],
        fmax=block["fmax"],
        steps=block["steps"],
        seed=config["seed"],
    )


def merged_tables(wildcards):
    return [f"results/data/{entry}.parquet" for entry in DATA["merge"]]


# --- screen stage ---
SCREEN = config["screen"]
SCREEN_CHUNKS = [f"{i:03d}" for i in range(SCREEN["chunks"])]


def screen_options():
    """`topogen screen chunk` options from the config's screen block."""
    return cli_options(
        fmax=SCREEN["fmax"],
        steps=SCREEN["steps"],
        batch_size=SCREEN["batch_size"],
        no_phonons=not SCREEN["phonons"],
        displacement=SCREEN["displacement"],
        min_repeat_2d=SCREEN["min_repeat_2d"],
        symprec=SCREEN["symprec"],
        tol=SCREEN["tol"],
        gamma_tol=SCREEN["gamma_tol"],
        gamma_radius=SCREEN["gamma_radius"],
        band_gap_min=SCREEN["band_gap_min"],
        topology_min=SCREEN["topology_min"],
        min_distance=SCREEN["min_distance"],
        oxidation_states_set=SCREEN["oxidation_states"],
        band_gap_model=SCREEN["band_gap_model"],
    )


def screen_models(wildcards):
    """The band-gap model, when the config names one (Snakemake then trains it first)."""
    return {"gap_model": SCREEN["band_gap_model"]} if SCREEN["band_gap_model"] else {}




# --- training stages ---
def gpus(wildcards, resources):
    """The rule's `gpu` resource (set by a cluster profile) for `--gpus`; auto without one."""
    return resources.get("gpu", "auto")


# --- dft stage ---
DFT = config["dft"]
# Control folders (results/dft/control-<name>/) -> control names of topogen.dft.candidates.
DFT_CONTROLS = {f"control-{name}": name for name in DFT["controls"].values()}


def dft_options():
    """The chain settings, identical for every step of every candidate."""
    return cli_options(**DFT["settings"])


def dft_pseudo_options():
    return cli_options(**DFT["pseudos"])


def dft_candidate(wildcards):
    """A candidate's file: a control's, or one that the dft_candidates checkpoint wrote."""
    if wildcards.cand in DFT_CONTROLS:
        return f"results/dft/controls/{wildcards.cand}.json"
    return f"results/dft/selected/{wildcards.cand}.json"


def dft_selected(wildcards):
    """Names of the candidates the checkpoint wrote (its index.csv), known once it ran."""
    import csv

    index = Path(checkpoints.dft_candidates.get().output[0]) / "index.csv"
    with open(index, newline="") as fh:
        return [row["candidate"] for row in csv.DictReader(fh)]


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


# --- GAN stages (workflow/rules/train.smk) ---
GAN = config["train"]["gan"]


def gan_options(stage):
    block = dict(GAN[f"stage{stage}"])
    block.pop("band_gap_model", None)
    shared = {k: v for k, v in GAN.items() if not k.startswith("stage") and k != "sample"}
    return cli_options(stage=stage, seed=config["seed"], **shared, **block)


def gan_stage3_inputs(wildcards):
    model = GAN["stage3"].get("band_gap_model")
    return {"band_gap_model": model} if model else {}
