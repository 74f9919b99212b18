/*
 * tools/stretch/json_error_place.h - where a jansson parse error is, for
 * messages that name FILE:LINE:COLUMN (the CLI) or "line L, column C" (the
 * server): jansson says column 0 before it has read a character of a line
 * (an undecodable first byte, an empty body), and columns count from 1.
 */
#ifndef ST_CLI_JSON_ERROR_PLACE_H
#define ST_CLI_JSON_ERROR_PLACE_H

#include <jansson.h>

static inline int st_json_error_column(const json_error_t *e)
{
    return e->column > 0 ? e->column : 1;
}

#endif
