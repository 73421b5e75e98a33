/* COBS, the reference algorithm byte for byte (synergy/serial/cobs.py documents the groups). */
#include "cobs.h"

#define GROUP_DATA 254u

size_t synergy_cobs_encode(const uint8_t *data, size_t length, uint8_t *out, size_t out_cap)
{
    size_t read = 0;
    size_t write = 1;
    size_t code_at = 0;
    uint8_t code = 1;
    if (out_cap == 0) {
        return 0;
    }
    while (read < length) {
        if (data[read] == 0) {
            out[code_at] = code;
            code_at = write++;
            code = 1;
            if (code_at >= out_cap) {
                return 0;
            }
        } else {
            if (write >= out_cap) {
                return 0;
            }
            out[write++] = data[read];
            code++;
            if (code == 0xFFu) {
                out[code_at] = code;
                code = 1;
                /* A full group that ends the data needs no empty group after it. */
                if (read + 1u == length) {
                    return write;
                }
                code_at = write++;
                if (code_at >= out_cap) {
                    return 0;
                }
            }
        }
        read++;
    }
    out[code_at] = code;
    return write;
}

long synergy_cobs_decode_in_place(uint8_t *block, size_t length)
{
    size_t index = 0;
    size_t write = 0;
    if (length == 0) {
        return -1;
    }
    while (index < length) {
        uint8_t code = block[index];
        size_t group_end;
        size_t i;
        if (code == 0) {
            return -1;
        }
        group_end = index + code;
        if (group_end > length) {
            return -1;
        }
        for (i = index + 1u; i < group_end; i++) {
            if (block[i] == 0) {
                return -1;
            }
            block[write++] = block[i];
        }
        index = group_end;
        if (code != 0xFFu && index < length) {
            block[write++] = 0;
        }
    }
    return (long)write;
}
