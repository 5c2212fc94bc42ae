/* A program that links libautosp-core alone (the compiler, no BLAS, no MPI): builds llama-tiny,
 * compiles its training step for 2 sequence-parallel ranks and prints what one rank needs:
 * the memory plan and the collectives the passes inserted. Build it against an installed
 * libautosp:
 *     cc plan.c $(pkg-config --cflags --libs autosp-core) -o plan
 * or with CMake: find_package(autosp) and target_link_libraries(... autosp::autosp_core). */
#include <stdio.h>

#include <autosp/analysis.h>
#include <autosp/models.h>
#include <autosp/passes.h>

int main(void) {
    autosp_model_config_t cfg;
    autosp_model_preset("llama-tiny", &cfg);
    autosp_error_t err;
    autosp_graph_t *g = autosp_model_build(&cfg, "tiny", &err);
    if (!g || autosp_symbol_bind(g, "S", 4096, &err) != AUTOSP_OK ||
        autosp_symbol_bind(g, "B", 1, &err) != AUTOSP_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 2;
    }
    /* sp_shard, ulysses, exact_loss, autodiff, checkpoint (sac), grad_sync: one rank's step */
    autosp_parallel_config_t pc = autosp_parallel_config_default();
    pc.sp = 2;
    autosp_graph_t *step = autosp_compile_training(g, &pc, &err);
    autosp_graph_free(g);
    if (!step) {
        fprintf(stderr, "%s\n", err.message);
        return 2;
    }
    /* no backend in this library: the plan holds the tensors alone, without kernel scratch */
    autosp_memory_plan_t plan;
    if (autosp_plan_memory(step, 0, NULL, &plan, &err) != AUTOSP_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 2;
    }
    int a2a = 0, reduce = 0;
    for (int i = 0; i < autosp_graph_num_nodes(step); i++) {
        autosp_op_t op = autosp_node_op(step, i);
        a2a += op == AUTOSP_OP_ALL_TO_ALL;
        reduce += op == AUTOSP_OP_ALL_REDUCE;
    }
    printf("llama-tiny at S=4096, sp 2: %d nodes per rank, %d all_to_all, %d all_reduce\n",
           autosp_graph_num_nodes(step), a2a, reduce);
    printf("per rank: params %.2f MiB, activations %.2f MiB, arena %.2f MiB, total %.2f MiB\n",
           plan.params / 1048576.0, plan.activations / 1048576.0, plan.arena / 1048576.0,
           plan.total / 1048576.0);
    autosp_graph_free(step);
    return a2a > 0 && plan.total > 0 ? 0 : 1;
}
