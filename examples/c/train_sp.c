/* train_sp.c: a program that trains llama-tiny with sequence parallelism, from a text file.
 *
 *     mpirun -np 2 ./train_sp TEXT CHECKPOINT
 *
 * Every rank of the world is one sequence-parallel rank (sp = world size): with 2 ranks each
 * holds 64 of every sequence's 128 tokens, and the loss is still the single-device loss. After
 * 50 steps it saves a checkpoint, loads it into a new trainer and evaluates rows it never
 * trained on, forward only. Exit 0 when the loss fell, 1 when not, 2 on an error. */
#include <stdio.h>

#include <autosp/autosp.h>

enum { B = 4, S = 128, STEPS = 50 };

static int32_t tokens[B * S], labels[B * S], positions[B * S];
static const char *const inputs[3] = {"tokens", "labels", "positions"};
static const int32_t *const data[3] = {tokens, labels, positions};

static int fail(const autosp_error_t *err) {
    fprintf(stderr, "train_sp: %s\n", err->message);
    return 2;
}

int main(int argc, char **argv) {
    autosp_error_t err;
    if (autosp_world_init(&argc, &argv, &err) != AUTOSP_OK) return fail(&err);
    if (argc != 3) return fprintf(stderr, "usage: train_sp TEXT CHECKPOINT\n"), 2;
    bool root = autosp_world_rank() == 0;
    autosp_comm_t *comm = autosp_comm_new_world(autosp_world_size(), &err);
    autosp_model_config_t cfg;
    autosp_model_preset("llama-tiny", &cfg);
    autosp_graph_t *g = comm ? autosp_model_build(&cfg, "llama-tiny", &err) : NULL;
    if (!g || autosp_symbol_bind(g, "B", B, &err) || autosp_symbol_bind(g, "S", S, &err))
        return fail(&err);
    /* every rank reads the text and draws the same rows; feeding takes each rank's slice */
    autosp_corpus_t *text = autosp_corpus_open(argv[1], AUTOSP_DATA_TEXT, -1, &err);
    autosp_sampler_t *rows =
        text ? autosp_sampler_new(autosp_corpus_windows(text, S), 1, &err) : NULL;
    autosp_train_config_t tc = autosp_train_config_default();
    tc.total_steps = STEPS;
    autosp_trainer_t *tr = rows ? autosp_trainer_new_comm(g, &tc, comm, &err) : NULL;
    if (!tr) return fail(&err);
    autosp_trainer_init_params(tr, 1);
    autosp_batch_t batch = {
        .B = B, .S = S, .tokens = tokens, .labels = labels, .positions = positions};
    autosp_step_stats_t st;
    float first = 0;
    for (int step = 0; step < STEPS; step++) {
        if (autosp_batch_fill(text, rows, (int64_t)step * B, false, &batch, &err))
            return fail(&err);
        for (int k = 0; k < 3; k++)
            if (autosp_trainer_feed(tr, inputs[k], data[k], &err)) return fail(&err);
        if (autosp_trainer_step(tr, &st, &err)) return fail(&err);
        if (step == 0) first = st.loss;
        if (root && (step + 1) % 10 == 0) printf("step %2d  loss %.4f\n", step + 1, st.loss);
    }
    /* a checkpoint, loaded again by a trainer of its own */
    if (autosp_trainer_save(tr, argv[2], NULL, NULL, 0, &err)) return fail(&err);
    autosp_trainer_t *again = autosp_trainer_new_comm(g, &tc, comm, &err);
    if (!again || autosp_trainer_load(again, argv[2], &err)) return fail(&err);
    /* forward only, on rows after the ones trained on */
    autosp_evaluator_t *ev = autosp_evaluator_new(g, NULL, 0, comm, &err);
    if (!ev || autosp_evaluator_copy_weights(ev, again, &err)) return fail(&err);
    if (autosp_batch_fill(text, rows, (int64_t)STEPS * B, false, &batch, &err)) return fail(&err);
    for (int k = 0; k < 3; k++)
        if (autosp_evaluator_feed(ev, inputs[k], data[k], &err)) return fail(&err);
    float held_out;
    if (autosp_evaluator_run(ev, &held_out, &err)) return fail(&err);
    if (root)
        printf("sp %d: loss %.4f -> %.4f, held-out %.4f after reloading %s\n",
               autosp_comm_sp_size(comm), first, st.loss, held_out, argv[2]);
    autosp_evaluator_free(ev);
    autosp_trainer_free(again);
    autosp_trainer_free(tr);
    autosp_sampler_free(rows);
    autosp_corpus_close(text);
    autosp_graph_free(g);
    autosp_comm_free(comm);
    autosp_world_finalize();
    return st.loss < first && held_out < first ? 0 : 1;
}
