/* read_file.h: a whole file into memory (json_load.c), for the readers of small text files. */
#ifndef AUTOSP_IO_READ_FILE_H
#define AUTOSP_IO_READ_FILE_H

#include <stddef.h>

#include "autosp/status.h"

/* *data (the caller's, mem_free) holds the file's *size bytes; more than AUTOSP_MAX_FILE_BYTES
 * is AUTOSP_ERR_LIMIT, and every message names the path. */
autosp_status_t io_read_file(const char *path, char **data, size_t *size, autosp_error_t *err);

#endif
