/* gradcheck.h: gradient checks through the whole stack, shared by test_gradcheck.c and
 * test_ops.c: build a graph, autodiff it, run the joint graph with the executor, and compare
 * every parameter's gradient with central finite differences of the loss computed by the same
 * executor.
 *
 * Tolerance: the loss is computed in f32 through a whole graph (~1e-6 relative), so a central
 * difference with step eps carries a rounding error of about 1e-6 * |L| / eps, plus O(eps^2)
 * truncation, which is large for the strongly curved norms at eps = 1e-2. With eps = 3e-3 and
 * |L| ~ 2 the rounding part is ~3e-4 absolute; we accept
 * |a - n| <= 2e-2 * max(|a|, |n|) + 5e-4. */
#ifndef AUTOSP_TEST_GRADCHECK_H
#define AUTOSP_TEST_GRADCHECK_H

#include "test_util.h"

/* xorshift64*, in [-1, 1): one stream for every test of the program */
float gc_uniform(void);

/* Fills params with 0.5 * uniform values, ids with valid values below vocab (positions and
 * segment ids by their role; a tensor named "labels" also gets ignore_index at index 2). */
void fill_inputs(autosp_graph_t *j, autosp_executor_t *ex, int vocab);

/* Checks `samples` coordinates of every parameter of g (all of them when fewer); g's first
 * output is the scalar loss, named "loss". Fails the test naming `what`. */
void gradcheck(autosp_graph_t *g, int vocab, int samples, const char *what);

/* loss = cross_entropy(reshape(y, rows_last), labels): a smooth scalar of every y; rows_last is
 * "rows,last" and the labels are an input of `rows` ids. */
void finish(autosp_graph_t *g, autosp_tensor_t y, const char *rows_last);

#endif
