# Shared helpers: config validation and small input functions. No logic beyond that.
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as exc:
    raise WorkflowError(
        "the configuration (config/config.yaml plus any --configfile/--config overrides) "
        f"does not match workflow/schemas/config.schema.yaml:\n{exc}"
    ) from exc


wildcard_constraints:
    name=r"[A-Za-z0-9_\-]+",


def import_set(wildcards):
    """The config block of one named import set (data.imports.<name>)."""
    sets = config["data"]["imports"]
    if wildcards.name not in sets:
        raise WorkflowError(
            f"data.use names {wildcards.name!r}, which is not a key of data.imports"
        )
    return sets[wildcards.name]


def used_import_tables(wildcards):
    return expand("results/data/import/{name}.parquet", name=config["data"]["use"])
