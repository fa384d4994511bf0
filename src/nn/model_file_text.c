/* model_file_text.c - writing the JSON text of a model file: the values
 * of keys, as the layer kinds (model_file_kinds.c) and the document
 * (model_file_write.c) write them, into a bounded buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model_file.h"

/* ---- the writer ---- */

static void put_bytes(cudl__mf_writer *w, const char *text, size_t n) {
  if (w->length < w->size) {
    size_t room = w->size - w->length;
    memcpy(w->buf + w->length, text, n < room ? n : room);
  }
  w->length += n;
}

void cudl__mf_put(cudl__mf_writer *w, const char *text) {
  put_bytes(w, text, strlen(text));
}

void cudl__mf_put_string(cudl__mf_writer *w, const char *s) {
  static const char hex[] = "0123456789abcdef";
  put_bytes(w, "\"", 1);
  for (; *s != '\0'; ++s) {
    const unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      char escaped[2];
      escaped[0] = '\\';
      escaped[1] = (char)c;
      put_bytes(w, escaped, 2);
    } else if (c < 0x20) {
      char escaped[6] = {'\\', 'u', '0', '0', 0, 0};
      escaped[4] = hex[c >> 4];
      escaped[5] = hex[c & 15];
      put_bytes(w, escaped, 6);
    } else {
      put_bytes(w, s, 1);
    }
  }
  put_bytes(w, "\"", 1);
}

void cudl__mf_put_key(cudl__mf_writer *w, const char *key) {
  cudl__mf_put(w, ", ");
  cudl__mf_put_string(w, key);
  cudl__mf_put(w, ": ");
}

void cudl__mf_put_int(cudl__mf_writer *w, int64_t value) {
  char text[32];
  snprintf(text, sizeof text, "%lld", (long long)value);
  cudl__mf_put(w, text);
}

void cudl__mf_key_int(cudl__mf_writer *w, const char *key, int64_t value) {
  cudl__mf_put_key(w, key);
  cudl__mf_put_int(w, value);
}

void cudl__mf_key_pair(cudl__mf_writer *w, const char *key, int h, int wd) {
  cudl__mf_put_key(w, key);
  if (h == wd) {
    cudl__mf_put_int(w, h);
    return;
  }
  cudl__mf_put(w, "[");
  cudl__mf_put_int(w, h);
  cudl__mf_put(w, ", ");
  cudl__mf_put_int(w, wd);
  cudl__mf_put(w, "]");
}

/* The shortest of %.6g .. %.9g that reads back (as the reader reads it: a
 * double, then a float) to exactly `value`; %.9g always does. The decimal
 * point is the C locale's whatever the program's locale says. */
void cudl__mf_key_float(cudl__mf_writer *w, const char *key, float value) {
  char text[48];
  int digits;
  char *c;
  for (digits = 6; digits <= 9; ++digits) {
    snprintf(text, sizeof text, "%.*g", digits, (double)value);
    /* strtod reads in the same locale snprintf wrote in. */
    if ((float)strtod(text, NULL) == value) break;
  }
  for (c = text; *c != '\0'; ++c)
    if (!((*c >= '0' && *c <= '9') || *c == '-' || *c == '+' || *c == 'e'))
      *c = '.';
  cudl__mf_put_key(w, key);
  cudl__mf_put(w, text);
}

void cudl__mf_key_bool(cudl__mf_writer *w, const char *key, int value) {
  cudl__mf_put_key(w, key);
  cudl__mf_put(w, value ? "true" : "false");
}
