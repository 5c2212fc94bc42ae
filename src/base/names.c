/* names.c: the JSON spelling of dtypes, roles and init kinds. */
#include <string.h>

#include "base/base.h"
#include "autosp/types.h"

static const char *const dtype_names[AUTOSP_DTYPE_COUNT] = {"f32", "bf16", "f16", "i32", "i64"};
static const size_t dtype_sizes[AUTOSP_DTYPE_COUNT] = {4, 2, 2, 4, 8};
static const char *const role_names[AUTOSP_ROLE_COUNT] = {"other",     "tokens", "labels",
                                                          "positions", "mask",   "segment_ids"};
static const char *const init_names[AUTOSP_INIT_COUNT] = {"normal", "zeros", "ones"};

static bool find_name(const char *const *names, int n, const char *name, int *out) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) {
            *out = i;
            return true;
        }
    return false;
}

const char *autosp_dtype_name(autosp_dtype_t t) {
    return (unsigned)t < AUTOSP_DTYPE_COUNT ? dtype_names[t] : "?";
}
size_t autosp_dtype_size(autosp_dtype_t t) {
    return (unsigned)t < AUTOSP_DTYPE_COUNT ? dtype_sizes[t] : 0;
}
const char *autosp_role_name(autosp_role_t r) {
    return (unsigned)r < AUTOSP_ROLE_COUNT ? role_names[r] : "?";
}
const char *autosp_init_name(autosp_init_t i) {
    return (unsigned)i < AUTOSP_INIT_COUNT ? init_names[i] : "?";
}

bool autosp_dtype_from_name(const char *name, autosp_dtype_t *out) {
    int i;
    if (!find_name(dtype_names, AUTOSP_DTYPE_COUNT, name, &i)) return false;
    *out = (autosp_dtype_t)i;
    return true;
}
bool autosp_role_from_name(const char *name, autosp_role_t *out) {
    int i;
    if (!find_name(role_names, AUTOSP_ROLE_COUNT, name, &i)) return false;
    *out = (autosp_role_t)i;
    return true;
}
bool autosp_init_from_name(const char *name, autosp_init_t *out) {
    int i;
    if (!find_name(init_names, AUTOSP_INIT_COUNT, name, &i)) return false;
    *out = (autosp_init_t)i;
    return true;
}
