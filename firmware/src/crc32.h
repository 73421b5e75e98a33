/* CRC-32/ISO-HDLC (zlib's crc32): poly 0x04C11DB7 reflected, init and xor-out 0xFFFFFFFF. */
#ifndef SYNERGY_CRC32_H
#define SYNERGY_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Start with crc = 0 and feed the pieces in order: crc = synergy_crc32(crc, piece, n). */
uint32_t synergy_crc32(uint32_t crc, const uint8_t *data, size_t length);

#endif
