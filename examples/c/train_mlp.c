/* A program that links libautosp: builds a small Llama with the C API, trains it for a few
 * steps on a repeating pattern, and prints the loss. Build it against an installed libautosp:
 *     cc train_mlp.c $(pkg-config --cflags --libs autosp) -o train_mlp
 * or with CMake: find_package(autosp) and target_link_libraries(... autosp::autosp). */
#include <stdio.h>

#include <autosp/autosp.h>

int main(void) {
    autosp_model_config_t cfg;
    autosp_model_preset("llama-tiny", &cfg);
    autosp_error_t err;
    autosp_graph_t *g = autosp_model_build(&cfg, "tiny", &err);
    if (!g || autosp_symbol_bind(g, "S", 32, &err) != AUTOSP_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 2;
    }
    autosp_train_config_t tc = autosp_train_config_default();
    tc.lr = 1e-2f;
    tc.total_steps = 30;
    autosp_trainer_t *tr = autosp_trainer_new(g, &tc, &err);
    autosp_graph_free(g);
    if (!tr) {
        fprintf(stderr, "%s\n", err.message);
        return 2;
    }
    autosp_trainer_init_params(tr, 42);
    int32_t *tokens = autosp_trainer_data(tr, "tokens"),
            *labels = autosp_trainer_data(tr, "labels");
    int32_t *positions = autosp_trainer_data(tr, "positions");
    for (int i = 0; i < 32; i++) { /* "abcd" repeated: the next byte is always predictable */
        tokens[i] = 'a' + i % 4;
        labels[i] = 'a' + (i + 1) % 4;
        positions[i] = i;
    }
    autosp_step_stats_t st = {0};
    float first = 0;
    for (int k = 0; k < 30; k++) {
        if (autosp_trainer_step(tr, &st, &err) != AUTOSP_OK) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        if (k == 0) first = st.loss;
    }
    printf("loss %.4f -> %.4f after 30 steps\n", first, st.loss);
    autosp_trainer_free(tr);
    return st.loss < first / 4 ? 0 : 1;
}
