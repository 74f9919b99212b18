"""stretch: Python bindings over libstretch's public host API (stretch.h).

    import stretch
    with stretch.Engine("manifests/greedy.yaml") as e:
        print(e.generate("Once upon a time", max_tokens=32).text)

Plugins and strategies (list, inspect, load-check, resolve) are in
stretch.plugins; see docs/python.md.
"""

from . import plugins
from ._capi import library_path
from .encoder import Encoder
from .engine import SAMPLING_KEYS, Engine
from .errors import Error, Status
from .retriever import Hit, Retriever
from .sequence import Sequence
from .results import (Constraint, EngineInfo, GenerateStats, Generation, TokenEvent,
                      TokenLogprob)
from .stream import GenerationStream

__all__ = ["Engine", "Encoder", "Error", "Status", "Constraint", "EngineInfo", "GenerateStats",
           "Generation", "TokenEvent", "TokenLogprob", "GenerationStream", "Hit", "Retriever",
           "Sequence", "SAMPLING_KEYS",
           "library_path", "plugins"]
__version__ = "0.1.0"
