/* SHA-256 (FIPS 180-4), incremental: a partition's digest is computed as its chunks arrive. */
#ifndef SYNERGY_SHA256_H
#define SYNERGY_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SYNERGY_SHA256_BYTES 32u

struct synergy_sha256 {
    uint32_t state[8];
    uint64_t total_bytes;
    uint8_t block[64];
    uint32_t block_used;
};

void synergy_sha256_init(struct synergy_sha256 *ctx);
void synergy_sha256_update(struct synergy_sha256 *ctx, const uint8_t *data, size_t length);
void synergy_sha256_final(struct synergy_sha256 *ctx, uint8_t digest[SYNERGY_SHA256_BYTES]);

#endif
