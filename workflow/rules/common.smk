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
        oxidation_states=SCREEN["oxidation_states"],
        band_gap_model=SCREEN["band_gap_model"],
    )


def screen_models(wildcards):
    """The band-gap model, when the config names one (Snakemake then trains it first)."""
    return {"gap_model": SCREEN["band_gap_model"]} if SCREEN["band_gap_model"] else {}


