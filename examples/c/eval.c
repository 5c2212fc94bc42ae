/* eval.c: the loss of a trained model on a text file, forward only.
 *
 *     ./eval MODEL.json WEIGHTS.safetensors TEXT [ROWS]
 *
 * MODEL.json is the model graph (examples/llama-tiny.json, say), WEIGHTS its parameters
 * (autosp-train's model.safetensors, or a checkpoint). It reads the first ROWS (default 16)
 * windows of 128 bytes of TEXT in file order and prints the mean loss and its perplexity. Run
 * it under mpirun to split each sequence over the ranks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <autosp/autosp.h>

enum { B = 4, S = 128 };

static int32_t tokens[B * S], labels[B * S], positions[B * S];

static int fail(const autosp_error_t *err) {
    fprintf(stderr, "eval: %s\n", err->message);
    return 2;
}

int main(int argc, char **argv) {
    autosp_error_t err;
    if (autosp_world_init(&argc, &argv, &err) != AUTOSP_OK) return fail(&err);
    if (argc < 4) return fprintf(stderr, "usage: eval MODEL.json WEIGHTS TEXT [ROWS]\n"), 2;
    int64_t rows = argc > 4 ? atoll(argv[4]) : 16;
    autosp_comm_t *comm = autosp_comm_new_world(autosp_world_size(), &err);
    autosp_graph_t *g = comm ? autosp_graph_load_file(argv[1], &err) : NULL;
    if (!g || autosp_symbol_bind(g, "B", B, &err) || autosp_symbol_bind(g, "S", S, &err))
        return fail(&err);
    autosp_evaluator_t *ev = autosp_evaluator_new(g, NULL, 0, comm, &err);
    autosp_corpus_t *text = ev ? autosp_corpus_open(argv[3], AUTOSP_DATA_TEXT, -1, &err) : NULL;
    if (!text || autosp_evaluator_load_weights(ev, argv[2], &err)) return fail(&err);
    const char *names[3] = {"tokens", "labels", "positions"};
    const int32_t *data[3] = {tokens, labels, positions};
    autosp_row_t row;
    double sum = 0;
    int64_t batches = 0, windows = autosp_corpus_windows(text, S);
    for (int64_t first = 0; first + B <= rows && first + B <= windows; first += B, batches++) {
        for (int b = 0; b < B; b++) { /* windows in file order */
            row = (autosp_row_t){tokens + b * S, labels + b * S, positions + b * S, NULL};
            autosp_corpus_row(text, first + b, S, false, &row);
        }
        for (int k = 0; k < 3; k++)
            if (autosp_evaluator_feed(ev, names[k], data[k], &err)) return fail(&err);
        float loss;
        if (autosp_evaluator_run(ev, &loss, &err)) return fail(&err);
        sum += loss;
    }
    if (autosp_world_rank() == 0 && batches)
        printf("%lld rows of %d tokens: loss %.4f, perplexity %.2f (arena %.1f MiB per rank)\n",
               (long long)(batches * B), S, sum / (double)batches, exp(sum / (double)batches),
               (double)autosp_evaluator_arena_bytes(ev) / (1 << 20));
    autosp_corpus_close(text);
    autosp_evaluator_free(ev);
    autosp_graph_free(g);
    autosp_comm_free(comm);
    autosp_world_finalize();
    return batches ? 0 : 2;
}
