/* metrics.h: autosp-train's record of a run: one JSON object per logged step (JSON Lines),
 * and the loss curve drawn from that file as an SVG picture. */
#ifndef AUTOSP_TOOLS_METRICS_H
#define AUTOSP_TOOLS_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "autosp/autosp.h"

typedef struct metric_row {
    int64_t step; /* 1-based: the step just taken */
    double loss, lr, grad_norm, tokens_per_s, gflops, step_ms, comm_share;
    int64_t mem_bytes; /* one rank's memory: arena bytes touched + AdamW state */
} metric_row_t;

/* Opens path for the rows: appending to earlier lines (a resumed run) or from empty. NULL
 * with err naming the file. Close with fclose. */
FILE *metrics_open(const char *path, bool append, autosp_error_t *err);
/* One line, flushed at once so a killed run keeps every row written before. */
void metrics_write(FILE *f, const metric_row_t *row);
/* Reads the steps and losses of a metrics file and writes the loss curve to svg (atomically).
 * A line that is not a JSON object with "step" and "loss" is an error naming its number. */
autosp_status_t metrics_plot(const char *jsonl, const char *svg, const char *title,
                             autosp_error_t *err);

#endif
