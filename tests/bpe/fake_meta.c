/*
 * tests/bpe/fake_meta.c - see fake_meta.h.
 */
#include "fake_meta.h"

#include <string.h>

static const fake_meta_entry *find(const fake_meta_host *fh, const char *key)
{
    for (size_t i = 0; i < fh->n_entries; i++)
        if (strcmp(fh->entries[i].key, key) == 0)
            return &fh->entries[i];
    return NULL;
}

static st_status fm_model_meta(void *host, const char *key, st_meta_value *out, st_error *err)
{
    const fake_meta_entry *e = find(host, key);
    if (!e)
        return ((fake_meta_host *)host)->th.services.error(err, ST_E_NOT_FOUND,
                                                          "no metadata key %s", key);
    memset(out, 0, sizeof *out);
    out->type = e->type;
    if (e->type == ST_META_INT) {
        out->i = e->i;
    } else if (e->type == ST_META_STRING) {
        out->str = e->str;
        out->len = strlen(e->str);
    } else {
        out->array_type = e->strs ? ST_META_STRING : ST_META_INT;
        out->len = e->n;
    }
    return ST_OK;
}

static st_status fm_array_string(void *host, const char *key, uint64_t index,
                                 const char **str, uint64_t *len, st_error *err)
{
    const fake_meta_entry *e = find(host, key);
    if (!e || e->type != ST_META_ARRAY || !e->strs || index >= e->n)
        return ((fake_meta_host *)host)->th.services.error(err, ST_E_NOT_FOUND,
                                                          "no string %s[%llu]", key,
                                                          (unsigned long long)index);
    *str = e->strs[index];
    *len = strlen(e->strs[index]);
    return ST_OK;
}

static st_status fm_array_int(void *host, const char *key, uint64_t index, int64_t *out,
                              st_error *err)
{
    const fake_meta_entry *e = find(host, key);
    if (!e || e->type != ST_META_ARRAY || !e->ints || index >= e->n)
        return ((fake_meta_host *)host)->th.services.error(err, ST_E_NOT_FOUND,
                                                          "no integer %s[%llu]", key,
                                                          (unsigned long long)index);
    *out = e->ints[index];
    return ST_OK;
}

void fake_meta_init(fake_meta_host *fh)
{
    memset(fh, 0, sizeof *fh);
    st_test_host_init(&fh->th);
    fh->th.services.model_meta = fm_model_meta;
    fh->th.services.meta_array_string = fm_array_string;
    fh->th.services.meta_array_int = fm_array_int;
}

static fake_meta_entry *slot(fake_meta_host *fh, const char *key)
{
    for (size_t i = 0; i < fh->n_entries; i++)
        if (strcmp(fh->entries[i].key, key) == 0) {
            memset(&fh->entries[i], 0, sizeof fh->entries[i]);
            fh->entries[i].key = key;
            return &fh->entries[i];
        }
    if (fh->n_entries == FAKE_META_MAX)
        return NULL;
    fake_meta_entry *e = &fh->entries[fh->n_entries++];
    memset(e, 0, sizeof *e);
    e->key = key;
    return e;
}

void fake_meta_set_int(fake_meta_host *fh, const char *key, int64_t v)
{
    fake_meta_entry *e = slot(fh, key);
    if (e) {
        e->type = ST_META_INT;
        e->i = v;
    }
}

void fake_meta_set_str(fake_meta_host *fh, const char *key, const char *v)
{
    fake_meta_entry *e = slot(fh, key);
    if (e) {
        e->type = ST_META_STRING;
        e->str = v;
    }
}

void fake_meta_set_strs(fake_meta_host *fh, const char *key, const char *const *v, size_t n)
{
    fake_meta_entry *e = slot(fh, key);
    if (e) {
        e->type = ST_META_ARRAY;
        e->strs = v;
        e->n = n;
    }
}

void fake_meta_set_ints(fake_meta_host *fh, const char *key, const int *v, size_t n)
{
    fake_meta_entry *e = slot(fh, key);
    if (e) {
        e->type = ST_META_ARRAY;
        e->ints = v;
        e->n = n;
    }
}

void fake_meta_remove(fake_meta_host *fh, const char *key)
{
    for (size_t i = 0; i < fh->n_entries; i++)
        if (strcmp(fh->entries[i].key, key) == 0) {
            fh->entries[i] = fh->entries[--fh->n_entries];
            return;
        }
}
