"""latentgraph's own workflow format (YAML, or the same model in JSON) to and from a `Graph`.

    version: 1
    description: what it does
    params: {prompt: a red fox, seed: 42}      # overridable with --set name=value
    nodes:
      noise: {type: LatentNoise, seed: $seed}
      denoise: {type: UNetDenoise, latent: noise.latent, steps: {from: steps_node.value}}

Why a custom loader: errors must point at file:line:column, and plain YAML silently merges
duplicate keys, expands alias bombs and types `no` as false (see `positions`).

Links: for a socket-only input a string `node.output` (or `node` when that node has one output)
is a link; a widget input takes a literal, or `{from: node.output}` to link it (every widget
accepts a link of its type, as in ComfyUI). `$name` / `${name}` substitutes a param (a
whole-value reference keeps the param's type, inside longer text it interpolates); `$$` is a
literal dollar.

The package holds one concept per module: `positions` (composing YAML with positions),
`reading` (the size limit, UTF-8, JSON), `building` (params, links, the `Graph`) and `dumping`.
"""

from .building import (
    FORMAT_VERSION,
    PARAM_NAME,
    GivenLocation,
    Workflow,
    given_by,
    given_name,
    load_workflow,
    override_value,
    parse_override,
    unknown_override,
)
from .dumping import dump_document, dump_workflow, graph_to_document, text_with_params
from .positions import DATA_SOURCE, MAX_DEPTH
from .reading import MAX_BYTES, read_source

__all__ = [
    "DATA_SOURCE", "FORMAT_VERSION", "MAX_BYTES", "MAX_DEPTH", "PARAM_NAME", "GivenLocation", "Workflow", "dump_document",
    "dump_workflow", "given_by", "given_name", "graph_to_document", "load_workflow", "override_value", "parse_override", "read_source", "text_with_params",
    "unknown_override",
]  # fmt: skip
