/* autosp/autosp.h: libautosp, compiler-based sequence parallelism for long-context training.
 *
 * Include this one header. What is here today (see docs/ for the design and its status):
 *   autosp/graph.h     the tensor IR and a C builder API, one function per op
 *   autosp/io.h        the JSON graph format and Graphviz output
 *   autosp/analysis.h  the verifier and per-op FLOP/byte costs
 *   autosp/models.h    Llama- and GPT-2-family forward graphs from a config or a preset
 *   autosp/passes.h    compiler passes (graph -> graph): autodiff
 *   autosp/backend.h   which kernels a device has for each (op, dtype)
 *   autosp/runtime.h   the executor on the cpu backend (memory plan + f32 kernels)
 *   autosp/comm.h      the process groups (Open MPI, or one process); autosp/comm_mpi.h
 *                      (not included here) makes one from a program's own MPI communicator
 *   autosp/safetensors.h  weights in the safetensors format, written and read with checks
 *   autosp/hf.h        Hugging Face checkpoints (config.json + safetensors) in and out
 *   autosp/train.h     training in one process: parameter init, clipping, AdamW, schedule
 *   autosp/data.h      training data: text, token streams, llm.c's .bin, packed batches with
 *                      segment ids, seeded epochs, the pass-key task
 *   autosp/status.h    status codes, error messages and allocation hooks
 *
 * Typical use:
 *     autosp_error_t err;
 *     autosp_graph_t *g = autosp_graph_load_file("examples/llama-tiny.json", &err);
 *     if (!g) { fprintf(stderr, "%s\n", err.message); return 2; }
 *     autosp_symbol_bind(g, "S", 4096, &err);
 *     autosp_graph_print_info(g, stdout, &err);
 *     autosp_graph_free(g);
 */
#ifndef AUTOSP_AUTOSP_H
#define AUTOSP_AUTOSP_H

#include "autosp/analysis.h"
#include "autosp/backend.h"
#include "autosp/comm.h"
#include "autosp/data.h"
#include "autosp/eval.h"
#include "autosp/graph.h"
#include "autosp/hf.h"
#include "autosp/io.h"
#include "autosp/limits.h"
#include "autosp/models.h"
#include "autosp/passes.h"
#include "autosp/runtime.h"
#include "autosp/safetensors.h"
#include "autosp/train.h"
#include "autosp/status.h"
#include "autosp/types.h"

#define AUTOSP_VERSION_MAJOR  0
#define AUTOSP_VERSION_MINOR  1
#define AUTOSP_VERSION_PATCH  0
#define AUTOSP_VERSION_STRING "0.1.0"

#endif
