/* st_diag formatting and the st_value helpers. */
#include <criterion/criterion.h>
#include <string.h>

#include "diag.h"
#include "value.h"

Test(manifest_value, diag_format)
{
    st_diag d;
    char buf[2300];
    st_diag_clear(&d);
    cr_expect_eq(st_diag_set(&d, ST_E_RANGE, "a.yaml", 3, 7, "expected %d, found %s", 1, "2"),
                 ST_E_RANGE);
    cr_expect_eq(d.status, ST_E_RANGE);
    cr_expect_str_eq(st_diag_format(&d, buf, sizeof buf), "a.yaml:3:7: expected 1, found 2");
    st_diag_set(&d, ST_E_IO, "a.yaml", 0, 0, "cannot open");
    cr_expect_str_eq(st_diag_format(&d, buf, sizeof buf), "a.yaml: cannot open");
    st_diag_set(&d, ST_E_IO, "a.yaml", 4, 0, "x");
    cr_expect_str_eq(st_diag_format(&d, buf, sizeof buf), "a.yaml:4: x");
    st_diag_set(&d, ST_E_IO, NULL, 4, 2, "two\nlines");
    cr_expect_str_eq(st_diag_format(&d, buf, sizeof buf), "two lines", "one line, no file");
    cr_expect_eq(st_diag_set(NULL, ST_E_INVALID, "f", 1, 1, "ignored"), ST_E_INVALID);
    st_diag_clear(&d);
    cr_expect_eq(d.status, ST_OK);
    cr_expect_str_eq(d.message, "");
}

static st_value *scalar(st_value_type t, const char *s)
{
    st_value *v = calloc(1, sizeof *v);
    v->type = t;
    v->s = strdup(s);
    v->file = "f.yaml";
    v->line = 2;
    v->col = 5;
    return v;
}

Test(manifest_value, clone_get_free)
{
    st_value *map = calloc(1, sizeof *map);
    map->type = ST_VALUE_MAP;
    map->n = 2;
    map->entries = calloc(2, sizeof *map->entries);
    map->entries[0].key = strdup("a");
    map->entries[0].value = scalar(ST_VALUE_INT, "12");
    map->entries[0].value->i = 12;
    map->entries[0].line = 2;
    map->entries[0].col = 2;
    st_value *list = calloc(1, sizeof *list);
    list->type = ST_VALUE_LIST;
    list->n = 2;
    list->items = calloc(2, sizeof *list->items);
    list->items[0] = scalar(ST_VALUE_STRING, "x");
    list->items[1] = scalar(ST_VALUE_FLOAT, "0.5");
    list->items[1]->f = 0.5;
    map->entries[1].key = strdup("b");
    map->entries[1].value = list;

    st_value *c = st_value_clone(map);
    st_value_free(map);
    cr_assert_not_null(c);
    const st_value *a = st_value_get(c, "a");
    cr_assert_not_null(a);
    cr_expect_eq(a->i, 12);
    cr_expect_str_eq(a->file, "f.yaml");
    cr_expect_eq(a->line, 2);
    cr_expect_eq(c->entries[0].col, 2);
    const st_value *b = st_value_get(c, "b");
    cr_assert_eq(b->type, ST_VALUE_LIST);
    cr_expect_str_eq(b->items[0]->s, "x");
    cr_expect_eq(b->items[1]->f, 0.5);
    cr_expect_null(st_value_get(c, "c"));
    cr_expect_null(st_value_get(b, "a"), "a list is not a map");
    cr_expect_null(st_value_get(NULL, "a"));
    cr_expect_null(st_value_clone(NULL));
    cr_expect_str_eq(st_value_type_name(ST_VALUE_MAP), "map");
    cr_expect_str_eq(st_value_type_name(ST_VALUE_BOOL), "bool");
    st_value_free(c);
    st_value_free(NULL);
}
