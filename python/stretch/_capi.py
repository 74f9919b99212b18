"""ctypes mirrors of sdk/include/stretch/stretch.h and common.h.

Field order and types follow the headers exactly; ctypes applies the same
natural alignment as the C compiler, and tests/test_layout.py compiles the
headers to check every size and offset. Structs that begin with
struct_size must have it set to ctypes.sizeof(...) before a call.
"""

from __future__ import annotations

import ctypes
from ctypes import (CFUNCTYPE, POINTER, Structure, c_bool, c_char, c_char_p, c_double,
                    c_float, c_int, c_int32, c_size_t, c_uint32, c_uint64, c_void_p)

from . import _library

ERROR_MESSAGE_MAX = 512  # ST_ERROR_MESSAGE_MAX
KIND_COUNT = 5           # ST_KIND_COUNT
ENCODE_ADD_BOS = 1 << 0        # tokenizer.h
ENCODE_PARSE_SPECIAL = 1 << 1  # tokenizer.h
# Plugin kinds in st_kind order (plugin_names is indexed by kind - 1).
KIND_NAMES = ("tokenizer", "positional-encoding", "attention", "sampler", "retriever")


class StError(Structure):
    _fields_ = [("status", c_int), ("message", c_char * ERROR_MESSAGE_MAX)]


# void (*st_log_fn)(void *user, st_log_level level, const char *source, const char *message)
LogFn = ctypes.CFUNCTYPE(None, c_void_p, ctypes.c_int, c_char_p, c_char_p)

NUMERICS = {None: 0, "fast": 1, "ggml": 2}  # st_numerics


class StEngineOptions(Structure):
    _fields_ = [("struct_size", c_uint32), ("n_threads", c_uint32), ("context", c_uint32),
                ("model", c_char_p),
                # ABI 1.2
                ("numerics", ctypes.c_int), ("plugin_dirs", POINTER(c_char_p)),
                ("n_plugin_dirs", c_size_t), ("log", LogFn), ("log_user", c_void_p),
                # ABI 1.3
                ("parallel", c_uint32),
                ("backend", c_char_p), ("device", c_char_p), ("no_kernel_cache", c_bool)]


class StEngineInfo(Structure):
    _fields_ = [("struct_size", c_uint32), ("n_vocab", c_uint32), ("n_ctx", c_uint32),
                ("n_ctx_train", c_uint32), ("n_layers", c_uint32), ("n_heads", c_uint32),
                ("n_kv_heads", c_uint32), ("n_embd", c_uint32), ("head_dim", c_uint32),
                ("n_threads", c_uint32), ("bos", c_int32), ("eos", c_int32), ("eot", c_int32),
                ("add_bos", c_bool), ("model_path", c_char_p),
                ("plugin_names", c_char_p * KIND_COUNT),
                # ABI 1.2
                ("n_samplers", c_uint32), ("sampler_names", POINTER(c_char_p)),
                ("kv_type", c_char_p), ("kv_bytes_per_token", c_uint64),
                # ABI 1.3
                ("parallel", c_uint32),
                ("reader", c_char_p),
                ("backend", c_char_p), ("device_name", c_char_p),
                ("kernel_compile_ms", ctypes.c_double), ("kernel_cache_hit", c_bool),
                ("device_bytes", c_uint64),
                # ABI 1.5
                ("kv_cache_bytes", c_uint64), ("kv_layer_bytes", POINTER(c_uint64)),
                # ABI 1.9
                ("prefix_cache", c_bool),
                # ABI 1.10
                ("bounded_cache", c_bool)]


class StRetrieved(Structure):
    _fields_ = [("struct_size", c_uint32), ("doc", c_uint64), ("score", c_float),
                ("id", c_void_p), ("id_len", c_size_t), ("text", c_void_p),
                ("text_len", c_size_t)]


class StParamText(Structure):
    _fields_ = [("name", c_char_p), ("value", c_char_p)]


class StChatMessage(Structure):
    _fields_ = [("role", c_char_p), ("content", c_char_p)]


class StSamplerOverride(Structure):
    _fields_ = [("plugin", c_char_p), ("param", c_char_p), ("value", c_double)]


class StLogitBias(Structure):
    _fields_ = [("token", c_int32), ("bias", c_float)]


class StSamplingName(Structure):
    _fields_ = [("field", c_char_p), ("flag", c_char_p), ("plugin", c_char_p),
                ("param", c_char_p), ("lo", c_double), ("hi", c_double), ("integer", c_bool)]


class StGenerateParams(Structure):
    _fields_ = [("struct_size", c_uint32), ("max_tokens", c_uint32), ("seed", c_uint64),
                ("ignore_eos", c_bool), ("first_logits", POINTER(c_float)),
                # ABI 1.3
                ("sampler_overrides", POINTER(StSamplerOverride)),
                ("n_sampler_overrides", c_size_t),
                # ABI 1.6
                ("constraint", c_char_p), ("constraint_params", POINTER(StParamText)),
                ("n_constraint_params", c_size_t),
                ("on_logprobs", c_void_p), ("n_top_logprobs", c_uint32),
                # ABI 1.7
                ("on_prompt_logprobs", c_void_p),
                ("logit_bias", POINTER(StLogitBias)), ("n_logit_bias", c_size_t),
                ("fresh_cache", c_bool)]


class StGenerateStats(Structure):
    _fields_ = [("struct_size", c_uint32), ("n_prompt", c_uint32), ("n_generated", c_uint32),
                ("prefill_s", c_double), ("decode_s", c_double), ("stopped_by_eos", c_bool),
                ("cancelled", c_bool),
                # ABI 1.2
                ("stopped_by_context", c_bool),
                # ABI 1.7
                ("n_cached", c_uint32)]


# text is c_void_p, not c_char_p: it is not NUL-terminated and may be empty.
TOKEN_FN = CFUNCTYPE(c_int, c_void_p, c_int32, c_void_p, c_size_t)
PROGRESS_FN = CFUNCTYPE(c_int, c_void_p, c_size_t, c_size_t)
LOGPROBS_FN = CFUNCTYPE(None, c_void_p, c_int32, c_float, POINTER(c_int32), POINTER(c_float),
                        c_size_t)

EnginePtr = c_void_p
IdsPtr = POINTER(c_int32)


def _declare(lib: ctypes.CDLL) -> None:
    def fn(name, restype, *argtypes):
        f = getattr(lib, name)
        f.restype = restype
        f.argtypes = list(argtypes)

    status = c_int
    fn("st_engine_open", status, c_char_p, POINTER(StEngineOptions), POINTER(EnginePtr),
       POINTER(StError))
    fn("st_engine_close", None, EnginePtr)
    fn("st_engine_uncancel", c_bool, EnginePtr)
    fn("st_engine_get_info", None, EnginePtr, POINTER(StEngineInfo))
    fn("st_engine_tokenize", status, EnginePtr, c_char_p, c_size_t, c_uint32,
       POINTER(IdsPtr), POINTER(c_size_t), POINTER(StError))
    fn("st_engine_detokenize", status, EnginePtr, IdsPtr, c_size_t, POINTER(c_void_p),
       POINTER(c_size_t), POINTER(StError))
    fn("st_engine_token_piece", status, EnginePtr, c_int32, POINTER(c_void_p),
       POINTER(c_size_t), POINTER(StError))
    fn("st_engine_chat_prompt", status, EnginePtr, c_char_p, POINTER(c_void_p), POINTER(StError))
    fn("st_engine_chat_tokenize_messages", status, EnginePtr, POINTER(StChatMessage), c_size_t,
       c_uint32, POINTER(IdsPtr), POINTER(c_size_t), POINTER(StError))
    fn("st_engine_generate", status, EnginePtr, IdsPtr, c_size_t, POINTER(StGenerateParams),
       TOKEN_FN, c_void_p, POINTER(StGenerateStats), POINTER(StError))
    fn("st_engine_cancel", None, EnginePtr)
    fn("st_engine_save_prompt", status, EnginePtr, c_char_p, POINTER(c_uint32), POINTER(StError))
    fn("st_engine_load_prompt", status, EnginePtr, c_char_p, POINTER(c_uint32), POINTER(StError))
    fn("st_sequence_open", status, EnginePtr, POINTER(c_void_p), POINTER(StError))
    fn("st_sequence_close", None, c_void_p)
    fn("st_sequence_start", status, c_void_p, IdsPtr, c_size_t, POINTER(StGenerateParams),
       TOKEN_FN, c_void_p, POINTER(StError))
    fn("st_sequence_continue", status, c_void_p, IdsPtr, c_size_t, POINTER(StGenerateParams),
       TOKEN_FN, c_void_p, POINTER(StError))
    fn("st_sequence_continued_prefix", c_size_t, c_void_p, IdsPtr, c_size_t)
    fn("st_sequence_cached_prefix", c_size_t, c_void_p, IdsPtr, c_size_t)
    fn("st_engine_step", status, EnginePtr, POINTER(c_uint32), POINTER(StError))
    fn("st_sequence_save_prompt", status, c_void_p, c_char_p, POINTER(c_uint32), POINTER(StError))
    fn("st_sequence_load_prompt", status, c_void_p, c_char_p, POINTER(c_uint32), POINTER(StError))
    fn("st_sequence_forget", status, c_void_p, POINTER(c_uint32), POINTER(StError))
    fn("st_sequence_busy", c_bool, c_void_p)
    fn("st_sequence_result", status, c_void_p, POINTER(StGenerateStats), POINTER(StError))
    fn("st_sequence_cancel", None, c_void_p)
    fn("st_engine_score", status, EnginePtr, IdsPtr, c_size_t, c_size_t, POINTER(c_float),
       PROGRESS_FN, c_void_p, POINTER(StError))
    fn("st_encoder_open", status, c_char_p, POINTER(StEngineOptions), POINTER(c_void_p),
       POINTER(StError))
    fn("st_encoder_close", None, c_void_p)
    fn("st_encoder_dim", c_uint32, c_void_p)
    fn("st_encoder_max_tokens", c_uint32, c_void_p)
    fn("st_encoder_embed_batch", status, c_void_p, c_size_t, POINTER(c_char_p),
       POINTER(c_size_t), POINTER(c_float), POINTER(IdsPtr), POINTER(c_size_t),
       POINTER(StError))
    fn("st_retriever_open", status, c_char_p, POINTER(StEngineOptions), c_uint32,
       POINTER(c_void_p), POINTER(StError))
    fn("st_retriever_close", None, c_void_p)
    fn("st_retriever_name", c_char_p, c_void_p)
    fn("st_retriever_top_k", c_uint32, c_void_p)
    fn("st_retriever_count", c_uint64, c_void_p)
    fn("st_retriever_add_batch", status, c_void_p, c_size_t, POINTER(c_char_p),
       POINTER(c_size_t), POINTER(c_char_p), POINTER(c_size_t), POINTER(StError))
    fn("st_retriever_save", status, c_void_p, c_char_p, POINTER(StError))
    fn("st_retriever_load", status, c_void_p, c_char_p, POINTER(StError))
    fn("st_retriever_query", status, c_void_p, c_char_p, c_size_t, c_size_t,
       POINTER(c_void_p), POINTER(StError))
    fn("st_retrieval_count", c_size_t, c_void_p)
    fn("st_retrieval_at", POINTER(StRetrieved), c_void_p, c_size_t)
    fn("st_retrieval_free", None, c_void_p)
    fn("st_retriever_render", status, c_void_p, c_char_p, c_void_p, POINTER(c_void_p),
       POINTER(StError))
    fn("st_sampling_name_at", POINTER(StSamplingName), c_size_t)
    fn("st_free", None, c_void_p)
    fn("st_strerror", c_char_p, c_int)
    fn("st_peak_rss_bytes", c_uint64)


lib, library_path = _library.load()
_declare(lib)
