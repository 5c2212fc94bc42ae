/* data.h: autosp-train's data. A corpus is a stream of token ids cut into documents; training
 * rows are S-token windows of it with labels, positions and segment ids, so that attention and
 * labels never cross a document boundary. The pass-key task makes synthetic rows instead. */
#ifndef AUTOSP_TOOLS_DATA_H
#define AUTOSP_TOOLS_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { IGNORE_LABEL = -100 }; /* cross_entropy's default ignore_index */

typedef enum data_format { DATA_AUTO, DATA_TEXT, DATA_U16, DATA_U32 } data_format_t;

/* Parses "auto", "text", "u16" or "u32"; false otherwise. */
bool data_format_parse(const char *name, data_format_t *out);

typedef struct corpus {
    const unsigned char *tokens; /* n ids of `width` bytes each, little-endian */
    int width;                   /* 1: bytes of text, 2 or 4: a pre-tokenized stream */
    int64_t n;
    int64_t *doc_start; /* n_docs + 1 entries: document d is [doc_start[d], doc_start[d + 1]) */
    int64_t n_docs;
    int64_t max_token;
    void *map; /* the mmap'ed file of a token stream, or NULL */
    size_t map_size;
    unsigned char *text; /* the bytes read, for text */
} corpus_t;

/* Reads PATH: a text file, a folder of text files (read in name order), or a token stream.
 * Text is byte-level (every byte one id); a file is a document, and so is each entry of a
 * fortune file (entries are separated by lines holding only "%", which are dropped). A token
 * stream is raw little-endian uint16 or uint32 ids, or llm.c's .bin (a 1024-byte header with
 * its magic; detected with DATA_AUTO), mapped, not copied; eot >= 0 ends a document after
 * each such id. 0, or the exit code of an error it printed (naming the file). */
int corpus_open(const char *prog, const char *path, data_format_t format, int64_t eot, corpus_t *c);
void corpus_close(corpus_t *c);

/* One row of a batch: S entries each; any pointer may be NULL (the model has no such input). */
typedef struct row {
    int32_t *tokens, *labels, *positions, *segments;
} row_t;

/* Windows of S + 1 tokens, one token overlapping the next window: (n - 1) / S of them. */
int64_t corpus_windows(const corpus_t *c, int64_t S);
/* Window w as a row. With documents, segment ids count the documents inside the window,
 * positions restart at 0 where a document starts, and a token whose next one is in another
 * document gets IGNORE_LABEL; without, positions are 0..S-1 and labels run on. */
void corpus_row(const corpus_t *c, int64_t w, int64_t S, bool documents, row_t *out);

/* Which window the i-th row of training reads: every window once per epoch, in an order
 * shuffled by (seed, epoch), so a run is a function of the seed and nothing else. */
typedef struct sampler {
    int64_t windows, epoch; /* epoch -1: no permutation made yet */
    int64_t *order;
    uint64_t seed;
} sampler_t;

int sampler_init(sampler_t *s, int64_t windows, uint64_t seed); /* 0, or -1 out of memory */
int64_t sampler_window(sampler_t *s, int64_t i);
void sampler_free(sampler_t *s);

/* ---- the pass-key task ----------------------------------------------------------------
 * Byte tokens. A row is filler, one sentence repeated ("The grass is green. The sky is
 * blue. ..."); somewhere in it (uniformly, anywhere before the question) the statement
 * "key=DDDDDDDDDD " with all ten digits in a random order, and at the very end the question
 * "key=" followed by the same digits. Only the ten answer digits have labels, so the loss is
 * the retrieval alone. Row i of a seed is always the same row.
 * Why ten digits and this filler: llama-tiny (2 layers) retrieves with an induction circuit,
 * and the steps before it forms grow with S. Five digits gave half the training signal and a
 * shortcut (attend to any digit: the last answer digit follows from the others) that stalled
 * it at higher learning rates. Random letters as filler add noise to every attention output
 * that grows with S: at S = 512 they took ~2000 steps of 16 rows to start retrieving, the
 * sentence ~900 (at S = 256 both ~550). */
enum { PASSKEY_DIGITS = 10, PASSKEY_MIN_SEQ = 32 };

/* Writes row i; returns the position of the statement's first digit. */
int64_t passkey_row(uint64_t seed, int64_t i, int64_t S, row_t *out);
/* The first position whose logits predict an answer digit: S - 1 - PASSKEY_DIGITS. */
int64_t passkey_answer_start(int64_t S);

#endif
