/*
 * core/plugin/check_report.h - the public st_check_report
 * (<stretch/registry.h>) made from the load checker's pipe report.
 */
#ifndef ST_CORE_CHECK_REPORT_H
#define ST_CORE_CHECK_REPORT_H

#include <stretch/registry.h>

#include "load_check.h"

/* A new report (free with st_check_report_free) describing `r`, a check of
 * `m`; NULL on allocation failure. */
st_check_report *st_check_report_build(const st_plugin_manifest *m, const st_load_report *r);

#endif
