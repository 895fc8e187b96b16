# topogen: generative design of 2D topological insulators.
# Thin rules only: every rule runs one `topogen ...` command (src/topogen/cli).
# A model's rules live in workflow/rules/models/<model>.smk (train_<model>, sample_<model>);
# the generators to run are listed in the config's `generators:`.
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from topogen.config_schema import load_config
from topogen.errors import TopogenError

min_version("9.0")


# Snakemake's own message for a YAML syntax error names neither file nor line: check first.
try:
    load_config(Path(workflow.basedir) / "config/config.yaml")
except TopogenError as _error:
    raise WorkflowError(str(_error)) from None


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/encode.smk"


for _model_rules in sorted(Path(workflow.basedir, "workflow/rules/models").glob("*.smk")):

    include: _model_rules


include: "workflow/rules/screen.smk"
include: "workflow/rules/dft.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_targets(),
    default_target: True
