/*
 * plugins/sampler/constraint/cg_open.h - a constraint from what a user
 * writes in a strategy: a GBNF grammar, a regular expression or a JSON
 * Schema (inline, or a file path for grammars and schemas). The gbnf,
 * regex and json-schema samplers, and awrs over any of them, open theirs
 * here, so each front end is wired in one place.
 */
#ifndef ST_CG_OPEN_H
#define ST_CG_OPEN_H

#include "cg_constraint.h"
#include "cg_schema.h"

typedef enum cg_kind { CG_KIND_GBNF, CG_KIND_REGEX, CG_KIND_JSON_SCHEMA } cg_kind;

/* "gbnf", "regex", "json-schema" -> kind; -1 for anything else. */
int cg_kind_from_name(const char *name);

/* Compile `spec` of `kind` and open `c` on it (cg_constraint_open).
 * Messages start with `plugin`; warnings of a lenient schema go to the
 * host's log. `opt` is used for JSON Schemas only. */
st_status cg_open_spec(cg_constraint *c, const st_host_services *host, const char *plugin,
                       cg_kind kind, const char *spec, const cg_schema_options *opt,
                       st_error *err);

#endif
