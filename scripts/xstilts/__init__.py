"""xstilts: a reproducible build of X-STILTs (Phang et al., AACL 2020).

The package is the importable library behind the Snakemake workflow: task registry, canonical
data formats, the embedded synthetic benchmark, training, prediction, XTREME scoring, retrieval
and table generation. Nothing in it depends on a running Snakemake; rule scripts are thin glue.
"""

__version__ = "0.1.0"
