/* Consistent Overhead Byte Stuffing (Cheshire and Baker 1999), as synergy/serial/cobs.py. */
#ifndef SYNERGY_COBS_H
#define SYNERGY_COBS_H

#include <stddef.h>

#include <stdint.h>

/* Encode data (no delimiter appended) into out; the encoded length, or 0 when out_cap is too
 * small (out_cap >= SYNERGY_COBS_MAX(length) always suffices). */
size_t synergy_cobs_encode(const uint8_t *data, size_t length, uint8_t *out, size_t out_cap);

/* Decode one block in place (the decoded bytes never overtake the encoded ones); the decoded
 * length, or -1 when a group runs past the end or a zero byte is inside (not COBS). */
long synergy_cobs_decode_in_place(uint8_t *block, size_t length);

#endif
