/* log.c - the process-wide log callback; silent until one is installed. */
#include <pthread.h>
#include <stdio.h>

#include "core/internal.h"

/* The one piece of process-wide state: a mutex keeps the (function, user
 * data) pair consistent for a message being delivered while it changes. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static cudl_log_fn log_fn = NULL;
static void *log_user_data = NULL;

void cudl_set_log_callback(cudl_log_fn fn, void *user_data) {
  pthread_mutex_lock(&log_lock);
  log_fn = fn;
  log_user_data = user_data;
  pthread_mutex_unlock(&log_lock);
}

const char *cudl_log_level_name(cudl_log_level level) {
  switch (level) {
    case CUDL_LOG_DEBUG:
      return "debug";
    case CUDL_LOG_INFO:
      return "info";
    case CUDL_LOG_WARN:
      return "warn";
    case CUDL_LOG_ERROR:
      return "error";
  }
  return "unknown";
}

void cudl__log(cudl_log_level level, const char *fmt, ...) {
  char message[CUDL_ERROR_TEXT_SIZE];
  va_list args;
  cudl_log_fn fn;
  void *user_data;
  /* Take a consistent (function, user data) pair, then call it unlocked so
   * a callback that itself calls cudl cannot deadlock. */
  pthread_mutex_lock(&log_lock);
  fn = log_fn;
  user_data = log_user_data;
  pthread_mutex_unlock(&log_lock);
  if (fn == NULL) return;
  va_start(args, fmt);
  vsnprintf(message, sizeof message, fmt, args);
  va_end(args);
  fn(level, message, user_data);
}
