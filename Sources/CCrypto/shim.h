// OpenSSL's SHA-256 (uses the CPU's SHA extensions) for the archive checksums.
#include <openssl/evp.h>
