// The errors both addons throw, the way Node's own argument checks do. Included by native/*.c (a header
// beside them, found without any -I); static inline, so each addon has its own copy and no warning for what it does not use.
#ifndef OBROL_NAPI_ERRORS_H
#define OBROL_NAPI_ERRORS_H

#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>

/* Throws (unless an exception is already pending) and returns NULL, the value a failing callback returns. */
static inline napi_value throw_type(napi_env env, const char *msg) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

static inline napi_value throw_range(napi_env env, const char *msg) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return NULL;
}

/* The callback's arguments into argv[0, n); false after throwing `usage` when fewer were passed. */
static inline bool get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < n) {
    throw_type(env, usage);
    return false;
  }
  return true;
}

#endif
