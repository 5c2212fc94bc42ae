/* Fuzz target for the JSON loader, where untrusted input enters the library.
 *
 * Beyond "no crash, no leak, no sanitizer report", every input that loads must also survive the
 * rest of what a user does with a graph: save -> load gives the same text again, binding every
 * free symbol keeps the graph valid, and costs, the --info table and the dot view work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autosp/autosp.h"

static FILE *sink(void) {
    static FILE *devnull;
    if (!devnull) devnull = fopen("/dev/null", "w");
    return devnull;
}

static void check_roundtrip(const autosp_graph_t *g) {
    char *a = autosp_graph_save_string(g, NULL);
    if (!a) abort();
    autosp_error_t err;
    autosp_graph_t *back = autosp_graph_load_string(a, strlen(a), &err);
    if (!back) {
        fprintf(stderr, "a saved graph does not load: %s\n", err.message);
        abort();
    }
    char *b = autosp_graph_save_string(back, NULL);
    if (!b || strcmp(a, b) != 0) {
        fprintf(stderr, "save -> load -> save changed the text\n");
        abort();
    }
    autosp_free(a);
    autosp_free(b);
    autosp_graph_free(back);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    autosp_error_t err;
    autosp_graph_t *g = autosp_graph_load_string((const char *)data, size, &err);
    if (!g) {
        if (err.status == AUTOSP_OK || !err.message[0]) abort(); /* a failure must say why */
        return 0;
    }
    check_roundtrip(g);
    for (int i = 0; i < autosp_graph_num_symbols(g); i++)
        if (!autosp_symbol_value(g, i)) autosp_symbol_bind(g, autosp_symbol_name(g, i), 8, NULL);
    if (autosp_graph_verify(g, 0, &err) != AUTOSP_OK) {
        fprintf(stderr, "binding a symbol broke the graph: %s\n", err.message);
        abort();
    }
    autosp_graph_print_info(g, sink(), NULL);
    autosp_graph_write_dot(g, sink(), NULL);
    autosp_graph_free(g);
    return 0;
}
