"""Pipeline definitions as data: dicts, TOML and JSON files, lint and diagrams.

The dict is TOML-safe (no nulls; an absent key means its default) and carries a
``format`` number. Guards are written as a registered kind plus parameters, never
as code: reading a definition only calls factories registered with
``guards.register``, so a file cannot make the library import or run anything.
Reading reports every problem found in one ``DefinitionError``.
"""

from salespipeline import pipeline as _pipeline
from salespipeline.definitions import _data
from salespipeline.definitions._data import (
    FORMAT,
    Finding,
    diagram,
    dump_pipeline,
    dumps,
    from_dict,
    lint,
    load_pipeline,
    loads,
    to_dict,
)

__all__ = [
    "FORMAT",
    "Finding",
    "diagram",
    "dump_pipeline",
    "dumps",
    "from_dict",
    "lint",
    "load_pipeline",
    "loads",
    "to_dict",
]

_pipeline.connect_definitions(_data)
