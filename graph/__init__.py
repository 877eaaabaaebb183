"""latentgraph.graph: the engine. Node declarations, workflows, validation, scheduling, caching.

Knows nothing about diffusion or HTTP, and never imports torch.
"""

from .context import Cancelled, CancelToken, Context, Settings
from .declare import (
    ANY,
    BOOLEAN,
    CLIP,
    COMBO,
    CONDITIONING,
    FLOAT,
    IMAGE,
    INT,
    LATENT,
    MASK,
    MODEL,
    SCHEDULER,
    STRING,
    VAE,
    Aliases,
    Bool,
    Choice,
    Float,
    Input,
    Int,
    NodeResult,
    NodeType,
    Output,
    Registry,
    Socket,
    String,
    default_registry,
    node,
)
from .model import Graph, Link, Location, Node
from .problems import InputError, Problem, WorkflowError

__all__ = [
    "ANY", "BOOLEAN", "CLIP", "COMBO", "CONDITIONING", "FLOAT", "IMAGE", "INT", "LATENT",
    "MASK", "MODEL", "SCHEDULER", "STRING", "VAE", "Aliases", "Bool", "Cancelled", "CancelToken",
    "Choice", "Context", "Float", "Graph", "Input", "InputError", "Int", "Link", "Location",
    "Node", "NodeResult", "NodeType", "Output", "Problem", "Registry", "Settings", "Socket",
    "String", "WorkflowError", "default_registry", "node",
]  # fmt: skip
