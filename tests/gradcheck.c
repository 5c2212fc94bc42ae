/* gradcheck.c: gradients through the whole stack against central finite differences (the
 * helpers of test_gradcheck.c and test_ops.c; tolerances in gradcheck.h). */
#include <math.h>

#include "gradcheck.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
float gc_uniform(void) { /* xorshift64*, in [-1, 1) */
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (float)((rng * 2685821657736338717ull) >> 40) / (float)(1 << 23) - 1.0f;
}

/* Fills params with N(0,~0.5)-ish values (ones-init params near 1), ids with valid values. */
void fill_inputs(autosp_graph_t *j, autosp_executor_t *ex, int vocab) {
    for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(j); t++) {
        autosp_kind_t k = autosp_tensor_kind(j, t);
        if (k == AUTOSP_KIND_VALUE) continue;
        int64_t n = autosp_tensor_numel(j, t);
        void *p = autosp_executor_data(ex, autosp_tensor_name(j, t));
        if (autosp_tensor_dtype(j, t) == AUTOSP_F32)
            for (int64_t i = 0; i < n; i++) ((float *)p)[i] = 0.5f * gc_uniform();
        else if (autosp_tensor_role(j, t) == AUTOSP_ROLE_POSITIONS)
            for (int64_t i = 0; i < n; i++) ((int32_t *)p)[i] = (int32_t)(i % 5) * 3;
        else if (autosp_tensor_role(j, t) == AUTOSP_ROLE_SEGMENT_IDS)
            for (int64_t i = 0; i < n; i++)
                ((int32_t *)p)[i] = i < n / 3 ? 0 : (i < n - 1 ? 1 : -1);
        else /* ids; labels (named so) also get an ignored position */
            for (int64_t i = 0; i < n; i++)
                ((int32_t *)p)[i] = i == 2 && !strcmp(autosp_tensor_name(j, t), "labels")
                                        ? -100
                                        : (int32_t)((i * 7 + 3) % vocab);
    }
}

static float run_loss(autosp_executor_t *ex) {
    autosp_error_t err;
    if (autosp_executor_run(ex, &err) != AUTOSP_OK) fail_msg("%s", err.message);
    return *(float *)autosp_executor_data(ex, "loss");
}

/* Checks `samples` coordinates of every parameter (all of them when fewer). */
void gradcheck(autosp_graph_t *g, int vocab, int samples, const char *what) {
    autosp_error_t err;
    autosp_graph_t *j = autosp_autodiff(g, &err);
    if (!j) fail_msg("%s: %s", what, err.message);
    /* a one-process comm, so that collectives (groups of one) run too */
    autosp_comm_t *comm = autosp_comm_new_single(&err);
    autosp_executor_t *ex = comm ? autosp_executor_new_comm(j, comm, &err) : NULL;
    if (!ex) fail_msg("%s: %s", what, err.message);
    fill_inputs(j, ex, vocab);
    run_loss(ex);
    int checked = 0, bad = 0;
    for (autosp_tensor_t t = 0; t < autosp_graph_num_tensors(g); t++) {
        if (autosp_tensor_kind(g, t) != AUTOSP_KIND_PARAM) continue;
        char gname[300];
        snprintf(gname, sizeof gname, "%s.grad", autosp_tensor_name(g, t));
        float *p = autosp_executor_data(ex, autosp_tensor_name(g, t));
        const float *grad = autosp_executor_data(ex, gname);
        int64_t n = autosp_tensor_numel(g, t);
        float *analytic = malloc(sizeof(float) * (size_t)n);
        memcpy(analytic, grad, sizeof(float) * (size_t)n); /* the runs below overwrite it */
        for (int s = 0; s < samples && s < n; s++) {
            int64_t i = n <= samples ? s : (int64_t)((gc_uniform() + 1) * 0.5f * (float)n) % n;
            const float eps = 3e-3f, keep = p[i];
            p[i] = keep + eps;
            double up = run_loss(ex);
            p[i] = keep - eps;
            double down = run_loss(ex);
            p[i] = keep;
            double numeric = (up - down) / (2 * eps), a = analytic[i];
            double tol = 2e-2 * fmax(fabs(a), fabs(numeric)) + 5e-4;
            checked++;
            if (fabs(a - numeric) > tol) {
                if (bad++ < 5)
                    print_error("%s: %s[%lld] analytic %.6g numeric %.6g\n", what,
                                autosp_tensor_name(g, t), (long long)i, a, numeric);
            }
        }
        free(analytic);
    }
    autosp_executor_free(ex);
    autosp_comm_free(comm);
    autosp_graph_free(j);
    if (bad) fail_msg("%s: %d of %d gradient coordinates off", what, bad, checked);
}

/* loss = cross_entropy(reshape(y, (rows, last)), labels): a smooth scalar of every y */
void finish(autosp_graph_t *g, autosp_tensor_t y, const char *rows_last) {
    autosp_tensor_t logits = autosp_reshape(g, y, rows_last, "logits");
    char rows[64];
    snprintf(rows, sizeof rows, "%.*s", (int)(strchr(rows_last, ',') - rows_last), rows_last);
    autosp_tensor_t labels = autosp_input(g, "labels", AUTOSP_I32, rows, AUTOSP_ROLE_OTHER, -1);
    autosp_output(g, autosp_cross_entropy(g, logits, labels, -100, "loss"));
}
