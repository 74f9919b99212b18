/* st_devices_list (stretch/devices.h): the OpenCL backend's enumeration,
 * handed out as the public struct. */
#include <stretch/devices.h>

#include "diag.h"
#include "opencl_backend.h"

ST_API st_status st_devices_list(st_device_info **out, size_t *n, st_error *err)
{
    st_diag d;
    st_diag_clear(&d);
    st_status s = st_opencl_devices(out, n, &d);
    return s == ST_OK ? ST_OK : st_error_from_diag(err, &d);
}
