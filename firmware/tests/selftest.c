/* Known-answer tests of the core's building blocks: CRC-32 (the check value), SHA-256 (FIPS
 * 180-4 examples), COBS (the worked example of docs/serial-protocol.md §9 and group edges).
 * Prints one line per failure; exit status 0 when all pass. */
#include <stdio.h>
#include <string.h>

#include "cobs.h"
#include "crc32.h"
#include "sha256.h"

static int failures;

static void expect(int ok, const char *what)
{
    if (!ok) {
        printf("FAIL: %s\n", what);
        failures++;
    }
}

static void expect_sha(const char *message, size_t repeat, const char *hex)
{
    struct synergy_sha256 ctx;
    uint8_t digest[SYNERGY_SHA256_BYTES];
    char text[65];
    size_t i;
    synergy_sha256_init(&ctx);
    for (i = 0; i < repeat; i++) {
        synergy_sha256_update(&ctx, (const uint8_t *)message, strlen(message));
    }
    synergy_sha256_final(&ctx, digest);
    for (i = 0; i < SYNERGY_SHA256_BYTES; i++) {
        sprintf(text + 2 * i, "%02x", digest[i]);
    }
    expect(strcmp(text, hex) == 0, message);
}

int main(void)
{
    static const uint8_t hello_frame[] = {0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x04, 0x00,
                                          0x01, 0x01, 0x00, 0x04, 0x03, 0xde, 0xd6, 0xc8};
    static const uint8_t hello_wire[] = {0x03, 0x01, 0x01, 0x01, 0x02, 0x01, 0x02, 0x04, 0x03,
                                         0x01, 0x01, 0x06, 0x04, 0x03, 0xde, 0xd6, 0xc8};
    uint8_t block[600], out[600];
    long decoded;
    size_t n;

    expect(synergy_crc32(0, (const uint8_t *)"123456789", 9) == 0xCBF43926ul, "CRC-32 check value");
    expect(synergy_crc32(synergy_crc32(0, (const uint8_t *)"1234", 4), (const uint8_t *)"56789", 5) == 0xCBF43926ul,
           "CRC-32 in pieces");
    expect(synergy_crc32(0, hello_frame, 12) == 0xC8D6DE03ul, "CRC-32 of the worked example");

    expect_sha("abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect_sha("", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect_sha("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
               "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    expect_sha("a", 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

    n = synergy_cobs_encode(hello_frame, sizeof hello_frame, out, sizeof out);
    expect(n == sizeof hello_wire && memcmp(out, hello_wire, n) == 0, "COBS of the worked example");
    memcpy(block, hello_wire, sizeof hello_wire);
    decoded = synergy_cobs_decode_in_place(block, sizeof hello_wire);
    expect(decoded == (long)sizeof hello_frame && memcmp(block, hello_frame, sizeof hello_frame) == 0,
           "COBS decode of the worked example");

    /* 254 non-zero bytes ending the data: one full group, no empty group after it. */
    memset(block, 0x11, 254);
    n = synergy_cobs_encode(block, 254, out, sizeof out);
    expect(n == 255 && out[0] == 0xFF, "COBS full group at the end");
    /* ... and the decoder also accepts the redundant trailing 0x01. */
    out[255] = 0x01;
    decoded = synergy_cobs_decode_in_place(out, 256);
    expect(decoded == 254, "COBS decode with a trailing 0x01");
    /* 254 bytes then a zero: a full group and an empty one. */
    memset(block, 0x22, 254);
    block[254] = 0;
    n = synergy_cobs_encode(block, 255, out, sizeof out);
    expect(n == 257 && out[0] == 0xFF && out[255] == 0x01 && out[256] == 0x01, "COBS full group then a zero");
    expect(synergy_cobs_encode(block, 255, out, 10) == 0, "COBS refuses a short buffer");
    out[0] = 0x05; /* a group running past the end */
    expect(synergy_cobs_decode_in_place(out, 3) == -1, "COBS group past the end");

    if (failures == 0) {
        printf("selftest: all passed\n");
    }
    return failures == 0 ? 0 : 1;
}
