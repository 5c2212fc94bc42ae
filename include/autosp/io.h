/* autosp/io.h: the JSON graph format (docs/json-format.md) and Graphviz output.
 *
 * Loading verifies as it goes: a graph returned by a load call has passed
 * autosp_graph_verify(). Saving writes to a temporary file beside the target, then renames it,
 * so a failed save never leaves a partial file and never clobbers the old one.
 */
#ifndef AUTOSP_IO_H
#define AUTOSP_IO_H

#include <stdio.h>

#include "autosp/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Returns a new graph (free with autosp_graph_free) or NULL with err filled in. */
autosp_graph_t *autosp_graph_load_file(const char *path, autosp_error_t *err);
autosp_graph_t *autosp_graph_load_string(const char *text, size_t len, autosp_error_t *err);

/* Writes the graph as JSON. The string is the caller's, to release with autosp_free(). */
char *autosp_graph_save_string(const autosp_graph_t *g, autosp_error_t *err);
autosp_status_t autosp_graph_save_file(const autosp_graph_t *g, const char *path,
                                       autosp_error_t *err);

/* Graphviz: one box per node, one ellipse per input or parameter. */
autosp_status_t autosp_graph_write_dot(const autosp_graph_t *g, FILE *out, autosp_error_t *err);
autosp_status_t autosp_graph_save_dot(const autosp_graph_t *g, const char *path,
                                      autosp_error_t *err);
/* The same as a string, the caller's to release with autosp_free(). */
char *autosp_graph_dot_string(const autosp_graph_t *g, autosp_error_t *err);

/* Writes data to path atomically (temp file in the same folder, fsync, rename). */
autosp_status_t autosp_write_file_atomic(const char *path, const void *data, size_t size,
                                         autosp_error_t *err);

/* Releases memory the library handed to the caller. */
void autosp_free(void *ptr);

#ifdef __cplusplus
}
#endif
#endif
