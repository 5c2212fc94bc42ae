/* autosp/data.h: training data. A corpus is a stream of token ids cut into documents; training
 * rows are S-token windows of it with labels, positions and segment ids, so that attention and
 * labels never cross a document boundary. A sampler visits every window once per epoch in an
 * order seeded by (seed, epoch). The pass-key task makes synthetic rows instead.
 *
 * Typical use (the trainer of autosp/train.h, a model with tokens, labels, positions and
 * segment_ids inputs; autosp-train does this for every rank, see tools/autosp_train.c):
 *     autosp_error_t err;
 *     autosp_corpus_t *c = autosp_corpus_open("train.bin", AUTOSP_DATA_AUTO, 50256, &err);
 *     if (!c) { fprintf(stderr, "%s\n", err.message); return 2; }
 *     autosp_sampler_t *s = autosp_sampler_new(autosp_corpus_windows(c, S), seed, &err);
 *     autosp_batch_t b = {.B = B, .S = S, .tokens = tok, .labels = lab, .positions = pos,
 *                         .segments = seg};               // four B x S int32 arrays, yours
 *     for (int64_t step = 0; step < steps; step++) {
 *         autosp_batch_fill(c, s, step * B, true, &b, &err); // rows step*B .. step*B + B-1
 *         autosp_trainer_feed(tr, "tokens", tok, &err); ... labels, positions, segment_ids
 *         autosp_trainer_step(tr, &st, &err);
 *     }
 *     autosp_sampler_free(s);
 *     autosp_corpus_close(c);
 *
 * Every row is a function of (the data, seed, row index): a run that resumes at step k draws
 * the batches it would have drawn. Nothing here prints or exits; errors are a status and a
 * message naming the file.
 */
#ifndef AUTOSP_DATA_H
#define AUTOSP_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "autosp/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The label of a token whose successor is not to be learnt: cross_entropy's default
 * ignore_index (autosp/graph.h). */
enum { AUTOSP_IGNORE_LABEL = -100 };

/* How autosp_corpus_open reads a file. AUTO: a path ending in ".bin" is a token stream (llm.c's
 * header detected, else raw uint16 ids), anything else text. */
typedef enum autosp_data_format {
    AUTOSP_DATA_AUTO,
    AUTOSP_DATA_TEXT, /* byte-level: every byte one id */
    AUTOSP_DATA_U16,  /* raw little-endian uint16 ids (or llm.c's .bin with uint16 ids) */
    AUTOSP_DATA_U32,  /* raw little-endian uint32 ids (or llm.c's .bin with uint32 ids) */
} autosp_data_format_t;

/* Parses "auto", "text", "u16" or "u32" into *out. AUTOSP_OK, or AUTOSP_ERR_INVALID with err
 * (may be NULL) naming the string; *out is then unchanged. name and out must not be NULL. */
autosp_status_t autosp_data_format_parse(const char *name, autosp_data_format_t *out,
                                         autosp_error_t *err);

/* ---- corpora -------------------------------------------------------------------------------- */

/* Opaque; the caller owns it and releases it with autosp_corpus_close. Read-only once open: the
 * const functions below may be called from several threads at once. */
typedef struct autosp_corpus autosp_corpus_t;

/* Reads path: a text file, a folder of text files (its regular files in name order, symbolic
 * links and names ending in ".dat" skipped, at most 4096 files), or a token stream.
 * Text is byte-level (every byte one id); a file is a document, and so is each entry of a
 * fortune file (entries are separated by lines holding only "%", which are dropped). A token
 * stream is raw little-endian uint16 or uint32 ids, or llm.c's .bin (a 1024-byte header with
 * magic 20240520: uint16 ids, or 20240801: uint32 ids, and the token count, which is checked),
 * mapped, not copied; eot >= 0 ends a document after each such id (-1: the stream is one
 * document; text ignores eot). path must not be NULL and stays the caller's.
 * Returns a new corpus (the caller's), or NULL with err (may be NULL) filled in:
 * AUTOSP_ERR_IO (cannot open, read or map), AUTOSP_ERR_INVALID (an empty file or folder, a
 * folder given as a token stream, ids that do not fill the file, a header that disagrees with
 * the file or with format), AUTOSP_ERR_NOMEM. Every message names the path. */
autosp_corpus_t *autosp_corpus_open(const char *path, autosp_data_format_t format, int64_t eot,
                                    autosp_error_t *err);
/* Releases c (and unmaps its file). c may be NULL. */
void autosp_corpus_close(autosp_corpus_t *c);

/* What the corpus holds; c must not be NULL. */
int64_t autosp_corpus_num_tokens(const autosp_corpus_t *c);    /* n >= 1 */
int64_t autosp_corpus_num_documents(const autosp_corpus_t *c); /* >= 1 */
int64_t autosp_corpus_max_token(const autosp_corpus_t *c);     /* the largest id */
int autosp_corpus_width(const autosp_corpus_t *c); /* bytes per id: 1 text, 2 or 4 a stream */
/* Token i (0 <= i < n). */
int64_t autosp_corpus_token(const autosp_corpus_t *c, int64_t i);
/* Where document d starts (0 <= d <= documents; d == documents gives n): document d is tokens
 * [start(d), start(d + 1)). */
int64_t autosp_corpus_document_start(const autosp_corpus_t *c, int64_t d);

/* ---- rows ------------------------------------------------------------------------------------ */

/* One row: S entries each, the caller's; any pointer may be NULL (the model has no such
 * input). */
typedef struct autosp_row {
    int32_t *tokens, *labels, *positions, *segments;
} autosp_row_t;

/* Windows of S + 1 tokens (S >= 1), one token overlapping the next window: (n - 1) / S. */
int64_t autosp_corpus_windows(const autosp_corpus_t *c, int64_t S);
/* Writes window w (0 <= w < autosp_corpus_windows(c, S)) into out. With documents, segment ids
 * count the documents inside the window from 0, positions restart at 0 where a document
 * starts, and a token whose next one is in another document gets AUTOSP_IGNORE_LABEL; without,
 * positions are 0..S-1, segment ids 0 and labels run on across documents. */
void autosp_corpus_row(const autosp_corpus_t *c, int64_t w, int64_t S, bool documents,
                       const autosp_row_t *out);

/* ---- the sampler ----------------------------------------------------------------------------- */

/* Which window the i-th row of training reads: every window once per epoch (windows rows), in
 * an order shuffled by (seed, epoch) (Fisher-Yates), so the rows are a function of the seed and
 * the row index alone. Opaque, the caller's; it keeps one epoch's order (8 bytes a window) and
 * remakes it when asked for another epoch, so one sampler must not be used by two threads at
 * once. */
typedef struct autosp_sampler autosp_sampler_t;

/* windows >= 1. NULL with err (may be NULL) filled in: AUTOSP_ERR_INVALID, AUTOSP_ERR_NOMEM. */
autosp_sampler_t *autosp_sampler_new(int64_t windows, uint64_t seed, autosp_error_t *err);
/* Releases s. s may be NULL. */
void autosp_sampler_free(autosp_sampler_t *s);
int64_t autosp_sampler_windows(const autosp_sampler_t *s);
/* The window of row i >= 0: in 0 .. windows - 1. */
int64_t autosp_sampler_window(autosp_sampler_t *s, int64_t i);

/* ---- batches --------------------------------------------------------------------------------- */

/* B rows of S tokens: each array holds B x S int32, row b at [b * S], and is the caller's; any
 * pointer may be NULL (the model has no such input). A row's labels are already shifted (the
 * label of token s is token s + 1 of its S + 1-token window), over the whole sequence: under
 * sequence parallelism fill the whole batch and let autosp_trainer_feed take each rank's
 * slice. */
typedef struct autosp_batch {
    int64_t B, S;
    int32_t *tokens, *labels, *positions, *segments;
} autosp_batch_t;

/* Rows first .. first + B - 1 of training: row first + b is window
 * autosp_sampler_window(s, first + b) of c as autosp_corpus_row makes it (documents: usually
 * out->segments != NULL, i.e. the model has segment ids). The sampler must have at most
 * autosp_corpus_windows(c, out->S) windows. AUTOSP_OK, or AUTOSP_ERR_INVALID with err (may be
 * NULL) filled in (NULL c, s or out, B or S < 1, first < 0, too many windows) and out
 * untouched. */
autosp_status_t autosp_batch_fill(const autosp_corpus_t *c, autosp_sampler_t *s, int64_t first,
                                  bool documents, const autosp_batch_t *out, autosp_error_t *err);

/* ---- the pass-key task ----------------------------------------------------------------------
 * Byte tokens (ids 0..255). A row is filler, one sentence repeated ("The grass is green. The sky
 * is blue. ..."); somewhere in it (uniformly, anywhere before the question) the statement
 * "key=DDDDDDDDDD " with all ten digits in a random order, and at the very end the question
 * "key=" followed by the same digits. Only the ten answer digits have labels, so the loss is
 * the retrieval alone. Row i of a seed is always the same row; positions are 0..S-1 and
 * segment ids 0.
 * Why ten digits and this filler: llama-tiny (2 layers) retrieves with an induction circuit,
 * and the steps before it forms grow with S. Five digits gave half the training signal and a
 * shortcut (attend to any digit: the last answer digit follows from the others) that stalled
 * it at higher learning rates. Random letters as filler add noise to every attention output
 * that grows with S: at S = 512 they took ~2000 steps of 16 rows to start retrieving, the
 * sentence ~900 (at S = 256 both ~550). */
enum { AUTOSP_PASSKEY_DIGITS = 10, AUTOSP_PASSKEY_MIN_SEQ = 32 };

/* Writes row i >= 0 of seed (S >= AUTOSP_PASSKEY_MIN_SEQ) into out; returns the position of the
 * statement's first digit. */
int64_t autosp_passkey_row(uint64_t seed, int64_t i, int64_t S, const autosp_row_t *out);
/* The first position whose logits predict an answer digit: S - 1 - AUTOSP_PASSKEY_DIGITS; the
 * answer's labels are at positions start .. S - 2. */
int64_t autosp_passkey_answer_start(int64_t S);
/* Rows first .. first + B - 1 of seed. at: NULL, or B entries that get each row's statement
 * position (what autosp_passkey_row returns). AUTOSP_OK, or AUTOSP_ERR_INVALID with err (may be
 * NULL) filled in (NULL out, B < 1, S < AUTOSP_PASSKEY_MIN_SEQ, first < 0) and out untouched. */
autosp_status_t autosp_batch_fill_passkey(uint64_t seed, int64_t first, const autosp_batch_t *out,
                                          int64_t *at, autosp_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
