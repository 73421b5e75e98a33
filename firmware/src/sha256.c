/* SHA-256 as FIPS 180-4 describes it, written for this firmware (no vendor code). The
 * MAX7800x has a hardware SHA block; this portable version keeps the core HAL-free and costs
 * about 1 KB of flash. */
#include "sha256.h"

static const uint32_t round_constants[64] = {
    0x428a2f98ul, 0x71374491ul, 0xb5c0fbcful, 0xe9b5dba5ul, 0x3956c25bul, 0x59f111f1ul, 0x923f82a4ul,
    0xab1c5ed5ul, 0xd807aa98ul, 0x12835b01ul, 0x243185beul, 0x550c7dc3ul, 0x72be5d74ul, 0x80deb1feul,
    0x9bdc06a7ul, 0xc19bf174ul, 0xe49b69c1ul, 0xefbe4786ul, 0x0fc19dc6ul, 0x240ca1ccul, 0x2de92c6ful,
    0x4a7484aaul, 0x5cb0a9dcul, 0x76f988daul, 0x983e5152ul, 0xa831c66dul, 0xb00327c8ul, 0xbf597fc7ul,
    0xc6e00bf3ul, 0xd5a79147ul, 0x06ca6351ul, 0x14292967ul, 0x27b70a85ul, 0x2e1b2138ul, 0x4d2c6dfcul,
    0x53380d13ul, 0x650a7354ul, 0x766a0abbul, 0x81c2c92eul, 0x92722c85ul, 0xa2bfe8a1ul, 0xa81a664bul,
    0xc24b8b70ul, 0xc76c51a3ul, 0xd192e819ul, 0xd6990624ul, 0xf40e3585ul, 0x106aa070ul, 0x19a4c116ul,
    0x1e376c08ul, 0x2748774cul, 0x34b0bcb5ul, 0x391c0cb3ul, 0x4ed8aa4aul, 0x5b9cca4ful, 0x682e6ff3ul,
    0x748f82eeul, 0x78a5636ful, 0x84c87814ul, 0x8cc70208ul, 0x90befffaul, 0xa4506cebul, 0xbef9a3f7ul,
    0xc67178f2ul,
};

static uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32u - n)); }

static void compress(uint32_t state[8], const uint8_t block[64])
{
    uint32_t w[64];
    uint32_t a, b, c, d, e, f, g, h;
    unsigned i;
    for (i = 0; i < 16u; i++) {
        w[i] = ((uint32_t)block[4u * i] << 24) | ((uint32_t)block[4u * i + 1u] << 16) |
               ((uint32_t)block[4u * i + 2u] << 8) | (uint32_t)block[4u * i + 3u];
    }
    for (i = 16; i < 64u; i++) {
        uint32_t s0 = rotr(w[i - 15u], 7) ^ rotr(w[i - 15u], 18) ^ (w[i - 15u] >> 3);
        uint32_t s1 = rotr(w[i - 2u], 17) ^ rotr(w[i - 2u], 19) ^ (w[i - 2u] >> 10);
        w[i] = w[i - 16u] + s0 + w[i - 7u] + s1;
    }
    a = state[0]; b = state[1]; c = state[2]; d = state[3];
    e = state[4]; f = state[5]; g = state[6]; h = state[7];
    for (i = 0; i < 64u; i++) {
        uint32_t s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        uint32_t choose = (e & f) ^ (~e & g);
        uint32_t t1 = h + s1 + choose + round_constants[i] + w[i];
        uint32_t s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        uint32_t majority = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = s0 + majority;
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    state[0] += a; state[1] += b; state[2] += c; state[3] += d;
    state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}

void synergy_sha256_init(struct synergy_sha256 *ctx)
{
    static const uint32_t initial[8] = {0x6a09e667ul, 0xbb67ae85ul, 0x3c6ef372ul, 0xa54ff53aul,
                                        0x510e527ful, 0x9b05688cul, 0x1f83d9abul, 0x5be0cd19ul};
    unsigned i;
    for (i = 0; i < 8u; i++) {
        ctx->state[i] = initial[i];
    }
    ctx->total_bytes = 0;
    ctx->block_used = 0;
}

void synergy_sha256_update(struct synergy_sha256 *ctx, const uint8_t *data, size_t length)
{
    size_t i;
    ctx->total_bytes += length;
    for (i = 0; i < length; i++) {
        ctx->block[ctx->block_used++] = data[i];
        if (ctx->block_used == 64u) {
            compress(ctx->state, ctx->block);
            ctx->block_used = 0;
        }
    }
}

void synergy_sha256_final(struct synergy_sha256 *ctx, uint8_t digest[SYNERGY_SHA256_BYTES])
{
    uint64_t bits = ctx->total_bytes * 8u;
    unsigned i;
    ctx->block[ctx->block_used++] = 0x80u;
    if (ctx->block_used > 56u) {
        while (ctx->block_used < 64u) {
            ctx->block[ctx->block_used++] = 0;
        }
        compress(ctx->state, ctx->block);
        ctx->block_used = 0;
    }
    while (ctx->block_used < 56u) {
        ctx->block[ctx->block_used++] = 0;
    }
    for (i = 0; i < 8u; i++) {
        ctx->block[56u + i] = (uint8_t)(bits >> (56u - 8u * i));
    }
    compress(ctx->state, ctx->block);
    for (i = 0; i < 8u; i++) {
        digest[4u * i] = (uint8_t)(ctx->state[i] >> 24);
        digest[4u * i + 1u] = (uint8_t)(ctx->state[i] >> 16);
        digest[4u * i + 2u] = (uint8_t)(ctx->state[i] >> 8);
        digest[4u * i + 3u] = (uint8_t)ctx->state[i];
    }
}
