"""Plain-data results: engine facts and what a generation returns."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EngineInfo:
    """st_engine_info. Token ids are None where the model has none."""
    n_vocab: int
    n_ctx: int
    n_ctx_train: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    n_embd: int
    head_dim: int
    n_threads: int
    bos: int | None
    eos: int | None
    eot: int | None
    add_bos: bool
    model_path: str
    plugins: dict[str, str] = field(default_factory=dict)  # kind -> plugin name
    samplers: tuple[str, ...] = ()  # the whole chain, in order
    backend: str = "cpu"  # "cpu" or "opencl"
    device: str | None = None  # the OpenCL device's name
    # A prompt's start may come from the cache (and go to a file: save_prompt)
    prefix_cache: bool = False
    # The attention plugin evicts: the cache stays within the context however
    # long a sequence grows (score past the context)
    bounded_cache: bool = False
    # Requests the engine runs at once (Engine.sequence, generate_batch)
    parallel: int = 1


@dataclass(frozen=True)
class GenerateStats:
    """st_generate_stats; times in seconds."""
    n_prompt: int
    n_generated: int
    prefill_s: float
    decode_s: float
    stopped_by_eos: bool
    cancelled: bool
    stopped_by_context: bool = False  # the context filled; the tokens so far are kept
    n_cached: int = 0  # prompt tokens taken from the previous call's cache


@dataclass(frozen=True)
class TokenLogprob:
    """A generated token's log-probability under the model (log-softmax of
    the raw logits, before the samplers) and its step's likeliest tokens,
    best first, as (id, log-probability) pairs."""
    token: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class Generation:
    """One generate() call: generated ids, their text, the stats, and with
    logprobs= each token's log-probability (None when not asked for); with
    prompt_logprobs=True the prompt's tokens after the first, each given
    the tokens before it."""
    text: str
    tokens: list[int]
    stats: GenerateStats
    logprobs: list[TokenLogprob] | None = None
    prompt_logprobs: list[TokenLogprob] | None = None
    stopped_by_stop: bool = False  # a stop string ended it (generate(stop=...))


@dataclass(frozen=True)
class TokenEvent:
    """One step of Engine.stream(): token is -1 for the text held back (an
    incomplete UTF-8 sequence, or what might have begun a stop string) and
    handed on at the end."""
    token: int
    text: str


@dataclass(frozen=True)
class Constraint:
    """A constraint sampler for one generation (ABI 1.6): the sampler plugin
    and its parameters as text, checked against the plugin's schema as a
    manifest's are; it runs first in the engine's chain for that call."""
    plugin: str
    params: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def json_schema(schema: dict | str, whitespace: str = "flexible",
                    max_digits: int = 16) -> "Constraint":
        """Output valid JSON for `schema` (a dict, or its JSON text), with at
        most `max_digits` digits in each digit run of a number the schema
        does not bound (0: any), 16 as in `stretch serve` and llama-server's
        JSON grammars: a small model otherwise writes digits until its
        budget ends."""
        import json
        text = schema if isinstance(schema, str) else json.dumps(schema)
        return Constraint("json-schema", {"schema": text, "whitespace": whitespace,
                                          "max-digits": str(max_digits)})

    @staticmethod
    def gbnf(grammar: str) -> "Constraint":
        """Output in a llama.cpp GBNF grammar (its text, start rule `root`)."""
        return Constraint("gbnf", {"grammar": grammar})

    @staticmethod
    def regex(pattern: str) -> "Constraint":
        """Output that matches `pattern` whole."""
        return Constraint("regex", {"pattern": pattern})
