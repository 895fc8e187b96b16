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

_unknown = [n for n in config["data"]["use"] if n not in config["data"]["imports"]]
if _unknown:
    raise WorkflowError(
        f"data.use names {_unknown[0]!r}, which is not a key of data.imports "
        f"(known: {', '.join(config['data']['imports'])})"
    )


wildcard_constraints:
    name=r"[A-Za-z0-9_\-]+",


def import_set(wildcards):
    """The config block of one named import set (data.imports.<name>)."""
    return config["data"]["imports"][wildcards.name]


def used_import_tables(wildcards):
    return expand("results/data/import/{name}.parquet", name=config["data"]["use"])
