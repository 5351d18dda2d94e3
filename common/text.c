#include "text.h"

#include <string.h>

void text_printable(char *out, size_t out_len, const char *text, size_t text_len, size_t max)
{
    size_t copied = text_len > max ? max : text_len;
    if (copied > out_len - 4)
        copied = out_len - 4;

    size_t n = 0;
    for (size_t i = 0; i < copied; i++) {
        unsigned char c = (unsigned char)text[i];
        out[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (copied < text_len) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}
