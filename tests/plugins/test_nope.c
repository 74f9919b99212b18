/*
 * positional-encoding `nope`: no rotation, only a temperature.
 */
#include "plugin_fixture.h"

static st_model_shape shape(void)
{
    st_model_shape s = {.struct_size = sizeof s, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                        .head_dim = 16, .rope_dims = 16, .rope_base = 10000.0f,
                        .n_ctx_train = 512, .n_ctx = 1024, .n_embd = 64, .n_vocab = 259};
    return s;
}

Test(nope, no_rotation_default_temperature)
{
    const st_plugin_entry *e = fx_entry("positional-encoding", "nope");
    const st_posenc_ops *ops = e->ops;
    void *p = fx_create(e, NULL);
    st_model_shape s = shape();
    st_posenc_desc d;
    memset(&d, 0xab, sizeof d);
    st_error err = {0};
    cr_assert_eq(ops->configure(p, &s, &d, &err), ST_OK, "%s", err.message);
    cr_assert_eq(d.flags, 0u);
    cr_assert_eq(d.n_freq, 0u);
    cr_assert_null(d.inv_freq);
    cr_assert_float_eq(d.rotary_scale, 1.0f, 0.0f);
    cr_assert_float_eq(d.attn_temperature, 1.0f, 0.0f);

    int32_t in[] = {0, 5, 70000}, out[3] = {0};
    cr_assert_eq(ops->map_positions(p, in, 3, out, &err), ST_OK);
    cr_assert_arr_eq(in, out, sizeof in);
    e->destroy(p);
    cr_assert_eq(st_test_host_default()->live_allocs, 0);
}

Test(nope, temperature_param)
{
    const st_plugin_entry *e = fx_entry("positional-encoding", "nope");
    st_test_params prm;
    st_test_params_init(&prm);
    st_test_params_float(&prm, "temperature", 0.5);
    void *p = fx_create(e, &prm);
    st_model_shape s = shape();
    st_posenc_desc d = {0};
    st_error err = {0};
    cr_assert_eq(((const st_posenc_ops *)e->ops)->configure(p, &s, &d, &err), ST_OK);
    cr_assert_float_eq(d.attn_temperature, 0.5f, 1e-7f);
    e->destroy(p);
}

Test(nope, temperature_out_of_range_refused)
{
    const st_plugin_entry *e = fx_entry("positional-encoding", "nope");
    double bad[] = {0.0, -1.0, 10.5};
    for (int i = 0; i < 3; i++) {
        st_test_params prm;
        st_test_params_init(&prm);
        st_test_params_float(&prm, "temperature", bad[i]);
        fx_create_fails(e, &prm, ST_E_RANGE);
    }
}
