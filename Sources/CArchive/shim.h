// libarchive reads and writes the tar streams; libdeflate compresses the
// independent gzip members that clmnt writes in parallel (libarchive's gzip
// filter is single-threaded).
#include <archive.h>
#include <archive_entry.h>
#include <libdeflate.h>
// libzstd directly rather than libarchive's zstd filter: it lets clmnt bound
// the job size (memory) and turn on frame checksums, which 3.6.2's filter does not.
#include <zstd.h>

// archive_set_error is variadic, which Swift cannot call: pass a plain message.
static inline void clmnt_archive_set_error(struct archive *a, int code, const char *message) {
    archive_set_error(a, code, "%s", message);
}
