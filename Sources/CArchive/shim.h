// libarchive for reading and writing tar streams, and zlib for the parallel
// gzip members clmnt writes itself (libarchive's gzip filter is single-threaded).
#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>

// deflateInit2 is a macro; Swift cannot call macros.
static inline int clmnt_deflate_init_gzip(z_stream *stream, int level) {
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
