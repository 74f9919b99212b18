/*
 * plugins/sampler/constraint/cg_schema.h - JSON Schema (draft 2020-12)
 * compiled to GBNF text for the constraint engine.
 *
 * Enforced: type, properties, required, additionalProperties,
 * patternProperties, items, prefixItems (and the draft-7 array form of
 * items with additionalItems), minItems, maxItems, enum, const, anyOf and
 * oneOf (as alternatives: oneOf's exclusivity is not), allOf (merged),
 * $ref/$defs/definitions (local, recursion included), minLength,
 * maxLength (beside a pattern too: cg_schema_length.c), pattern, format
 * (date-time, date, time, email, uuid, uri, ipv4, hostname),
 * minimum/maximum/exclusiveMinimum/exclusiveMaximum for integers and for
 * numbers with integer bounds, multipleOf a power of ten at or below 1,
 * dependentRequired/dependentSchemas/dependencies (cg_schema_logic.c),
 * maxProperties 0, propertyNames {pattern} on objects of additional
 * members. Annotations (title, description, default, examples, ...) are
 * ignored. Every other validation keyword is reported by name: refused,
 * or with strict off accepted with a warning and not enforced.
 */
#ifndef ST_CG_SCHEMA_H
#define ST_CG_SCHEMA_H

#include "cg_json.h"

typedef struct cg_schema_options {
    bool strict;        /* refuse keywords that cannot be enforced */
    bool compact;       /* no whitespace between tokens (else up to 20 chars) */
    bool open_objects;  /* absent additionalProperties allows other members
                           beside declared ones (the spec's reading); off,
                           such an object has only what the schema names */
    int max_digits;     /* > 0: at most this many digits in a number's
                           integer part, fraction and exponent where the
                           schema bounds none of them; 0: any */
} cg_schema_options;

/* Compile `text` (a JSON Schema document) into GBNF with start rule
 * `root`, appended to `out`; warnings (one line each) to `warnings`.
 * False with err (offset into text, message naming the JSON pointer of
 * the keyword) when the schema is not JSON, not a schema, or uses what
 * cannot be enforced under strict. */
bool cg_schema_to_gbnf(const char *text, size_t len, const cg_schema_options *opt, cg_buf *out,
                       cg_buf *warnings, cg_error *err);

#endif
