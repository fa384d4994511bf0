/* model_file_keys.c - reading the values of a model file's keys for the
 * layer kinds (model_file_kinds.c) and the document (model_file_read.c),
 * and the messages that name where a value is wrong. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "nn/model_file.h"

/* ---- messages ---- */

/* Record `text` as a failure of `function` on one line: names and values from
 * the file may hold any character, and control characters are written as
 * escapes (\n, \t, \xHH). */
cudl_status cudl__mf_fail_line(cudl_context *ctx, cudl_status status,
                               const char *function, const char *text) {
  char line[CUDL_ERROR_TEXT_SIZE];
  size_t used = 0;
  for (; *text != '\0' && used + 5 < sizeof line; ++text) {
    const unsigned char c = (unsigned char)*text;
    if (c == '\n' || c == '\t' || c == '\r') {
      line[used++] = '\\';
      line[used++] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
    } else if (c < 0x20 || c == 0x7f) {
      used += (size_t)snprintf(line + used, sizeof line - used, "\\x%02x", c);
    } else {
      line[used++] = (char)c;
    }
  }
  line[used] = '\0';
  return cudl__fail(ctx, status, function, "%s", line);
}

cudl_status cudl__mf_fail(cudl__mf_reader *r, cudl_status status,
                          const char *key, const char *fmt, ...) {
  char message[CUDL_ERROR_TEXT_SIZE], text[CUDL_ERROR_TEXT_SIZE];
  va_list args;
  va_start(args, fmt);
  vsnprintf(message, sizeof message, fmt, args);
  va_end(args);
  snprintf(text, sizeof text, "%s: %s%s%s%s%s", r->source, r->where,
           r->where[0] != '\0' && key != NULL ? "." : "",
           key != NULL ? key : "",
           r->where[0] != '\0' || key != NULL ? ": " : "", message);
  return cudl__mf_fail_line(r->ctx, status, r->function, text);
}

/* "a string", "an object", ... for "not <what>" in messages. */
const char *cudl__mf_json_what(const json_t *value) {
  switch (json_typeof(value)) {
    case JSON_OBJECT:
      return "an object";
    case JSON_ARRAY:
      return "an array";
    case JSON_STRING:
      return "a string";
    case JSON_INTEGER:
      return "an integer";
    case JSON_REAL:
      return "a real number";
    case JSON_TRUE:
      return "true";
    case JSON_FALSE:
      return "false";
    case JSON_NULL:
      return "null";
  }
  return "a JSON value";
}

cudl_status cudl__mf_graph(cudl__mf_reader *r, cudl_status status) {
  char reason[CUDL_ERROR_TEXT_SIZE];
  const char *detail, *colon;
  if (status == CUDL_OK) return CUDL_OK;
  detail = cudl_context_last_error(r->ctx);
  /* The graph's message starts with its function's name: the path takes
   * its place. */
  colon = strstr(detail, ": ");
  if (strncmp(detail, "cudl_", 5) == 0 && colon != NULL) detail = colon + 2;
  strncpy(reason, detail, sizeof reason - 1);
  reason[sizeof reason - 1] = '\0';
  if (status == CUDL_ERR_SHAPE || status == CUDL_ERR_INVALID_ARGUMENT)
    status = CUDL_ERR_FILE_SHAPE;
  return cudl__mf_fail(r, status, NULL, "%s", reason);
}

/* ---- key readers ---- */

/* An integer in [lo, hi]: CUDL_OK; else the failure, naming `path`. */
cudl_status cudl__mf_check_int(cudl__mf_reader *r, const char *path,
                               const json_t *v, int64_t lo, int64_t hi,
                               const char *alternative, int64_t *out) {
  if (!json_is_integer(v))
    return cudl__mf_fail(r, CUDL_ERR_FILE_SCHEMA, path,
                         "must be an integer from %lld to %lld%s, not %s",
                         (long long)lo, (long long)hi, alternative,
                         cudl__mf_json_what(v));
  if (json_integer_value(v) < lo || json_integer_value(v) > hi)
    return cudl__mf_fail(r, CUDL_ERR_FILE_VALUE, path,
                         "must be an integer from %lld to %lld%s, not %lld",
                         (long long)lo, (long long)hi, alternative,
                         (long long)json_integer_value(v));
  *out = (int64_t)json_integer_value(v);
  return CUDL_OK;
}

cudl_status cudl__mf_int(cudl__mf_reader *r, const char *key, int required,
                         int64_t lo, int64_t hi, int64_t fallback,
                         int64_t *out) {
  const json_t *v = json_object_get(r->layer, key);
  if (v == NULL) {
    if (required)
      return cudl__mf_fail(r, CUDL_ERR_FILE_SCHEMA, key,
                           "missing: an integer from %lld to %lld is required",
                           (long long)lo, (long long)hi);
    *out = fallback;
    return CUDL_OK;
  }
  return cudl__mf_check_int(r, key, v, lo, hi, "", out);
}

cudl_status cudl__mf_pair(cudl__mf_reader *r, const char *key, int required,
                          int lo, int hi, const int fallback[2], int out[2]) {
  static const char either[] = " or a pair [h, w] of them";
  const json_t *v = json_object_get(r->layer, key);
  char path[64];
  int64_t value;
  size_t i;
  cudl_status s;
  if (v == NULL) {
    if (required)
      return cudl__mf_fail(r, CUDL_ERR_FILE_SCHEMA, key,
                           "missing: an integer from %d to %d or a pair "
                           "[h, w] of them is required",
                           lo, hi);
    out[0] = fallback[0];
    out[1] = fallback[1];
    return CUDL_OK;
  }
  if (!json_is_array(v)) {
    s = cudl__mf_check_int(r, key, v, lo, hi, either, &value);
    if (s != CUDL_OK) return s;
    out[0] = out[1] = (int)value;
    return CUDL_OK;
  }
  if (json_array_size(v) != 2)
    return cudl__mf_fail(r, CUDL_ERR_FILE_SCHEMA, key,
                         "must be an integer from %d to %d%s, not an array "
                         "of %zu",
                         lo, hi, either, json_array_size(v));
  for (i = 0; i < 2; ++i) {
    snprintf(path, sizeof path, "%s[%zu]", key, i);
    s = cudl__mf_check_int(r, path, json_array_get(v, i), lo, hi, "", &value);
    if (s != CUDL_OK) return s;
    out[i] = (int)value;
  }
  return CUDL_OK;
}

cudl_status cudl__mf_float(cudl__mf_reader *r, const char *key, double lo,
                           double hi, float fallback, float *out) {
  const json_t *v = json_object_get(r->layer, key);
  float f;
  if (v == NULL) {
    *out = fallback;
    return CUDL_OK;
  }
  if (!json_is_number(v))
    return cudl__mf_fail(r, CUDL_ERR_FILE_SCHEMA, key,
                         "must be a number from %g to %g, not %s", lo, hi,
                         cudl__mf_json_what(v));
  f = (float)json_number_value(v);
  if (!isfinite(f) || !((double)f >= lo && (double)f <= hi))
    return cudl__mf_fail(r, CUDL_ERR_FILE_VALUE, key,
                         "must be a number from %g to %g, not %g", lo, hi,
                         json_number_value(v));
  *out = f;
  return CUDL_OK;
}

cudl_status cudl__mf_bool(cudl__mf_reader *r, const char *key, int fallback,
                          int *out) {
  const json_t *v = json_object_get(r->layer, key);
  if (v == NULL) {
    *out = fallback;
    return CUDL_OK;
  }
  if (!json_is_boolean(v))
    return cudl__mf_fail(r, CUDL_ERR_FILE_SCHEMA, key,
                         "must be true or false, not %s",
                         cudl__mf_json_what(v));
  *out = json_is_true(v);
  return CUDL_OK;
}
