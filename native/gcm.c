/*
 * clowder_gcm: AES-256-GCM for the cluster's sealed records, on the OpenSSL that Node itself
 * carries (its headers ship with Node's; its symbols are Node's own, so no second OpenSSL loads).
 *
 * Why not node:crypto: a Node cipher object is one record only (a new one sets up the key schedule
 * each time, ~5 µs), and update() returns a freshly allocated buffer that Node then shrinks by one
 * byte with a copy. Here one context per direction of a connection keeps its key for the
 * connection's life, a record only sets its nonce, and the data is sealed or opened where it lies
 * (in place, or into a caller's buffer): about 3x the throughput at 64 KiB records, and a fixed
 * cost per record of ~1.5 µs instead of ~8 µs on the machine this was measured on.
 *
 * The wire format is plain AES-256-GCM (12-byte nonce, 16-byte tag): records sealed here open with
 * node:crypto and the other way round, so nodes with and without this module interoperate.
 *
 * Every offset and length is checked against its buffer before OpenSSL sees it: a bad call throws
 * a TypeError/RangeError, it never reads or writes outside a buffer.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
  EVP_CIPHER_CTX *ctx;
  int decrypt;
} Gcm;

static void gcm_free(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Gcm *g = data;
  EVP_CIPHER_CTX_free(g->ctx);
  free(g);
}

/* A Uint8Array's bytes (a Buffer is one), or 0 with a TypeError pending. */
static int bytes_of(napi_env env, napi_value v, uint8_t **p, size_t *n, const char *what) {
  bool is = false;
  napi_typedarray_type t;
  void *data;
  napi_value ab;
  size_t off;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &t, n, &data, &ab, &off) != napi_ok || t != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", what);
    return 0;
  }
  *p = data;
  return 1;
}

static int u32_of(napi_env env, napi_value v, uint32_t *out) {
  if (napi_get_value_uint32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "offsets and lengths must be numbers");
    return 0;
  }
  return 1;
}

/*
 * The `len` bytes at offset `voff` of the Uint8Array `vbuf`: 0 with a TypeError or RangeError
 * pending unless they lie wholly inside it (what a caller then reads or writes is only there).
 */
static int span_of(napi_env env, napi_value vbuf, napi_value voff, uint32_t len, uint8_t **out, const char *what) {
  uint8_t *p;
  size_t n;
  uint32_t off;
  if (!bytes_of(env, vbuf, &p, &n, what) || !u32_of(env, voff, &off)) return 0;
  if ((uint64_t)off + len > n || len > INT32_MAX) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", what);
    return 0;
  }
  *out = p + off;
  return 1;
}

/* The call's arguments, at least `n` of them (else an Error naming the usage). */
static int args_of(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < n) {
    napi_throw_error(env, "ERR_CLOWDER_GCM", usage);
    return 0;
  }
  return 1;
}

static Gcm *gcm_of(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "not a clowder_gcm context");
    return NULL;
  }
  return p;
}

static napi_value fail(napi_env env, const char *what) {
  napi_throw_error(env, "ERR_CLOWDER_GCM", what);
  return NULL;
}

/* create(key: Uint8Array(32), decrypt: boolean): External — one direction of one connection. */
static napi_value create(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint8_t *key;
  size_t klen;
  bool dec = false;
  if (!args_of(env, info, 2, argv, "create(key, decrypt)") ||
      !bytes_of(env, argv[0], &key, &klen, "key must be a Uint8Array"))
    return NULL;
  if (klen != 32) return fail(env, "key must be 32 bytes");
  if (napi_get_value_bool(env, argv[1], &dec) != napi_ok) return fail(env, "decrypt must be a boolean");
  Gcm *g = calloc(1, sizeof(Gcm));
  if (g == NULL) return fail(env, "out of memory");
  g->decrypt = dec;
  g->ctx = EVP_CIPHER_CTX_new();
  int ok = g->ctx != NULL && EVP_CipherInit_ex(g->ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, dec ? 0 : 1) &&
           EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) &&
           EVP_CipherInit_ex(g->ctx, NULL, NULL, key, NULL, dec ? 0 : 1);
  if (!ok) {
    EVP_CIPHER_CTX_free(g->ctx);
    free(g);
    return fail(env, "cannot set up AES-256-GCM");
  }
  napi_value ext;
  if (napi_create_external(env, g, gcm_free, NULL, &ext) != napi_ok) {
    gcm_free(env, g, NULL);
    return fail(env, "cannot create the context object");
  }
  return ext;
}

/* begin(ctx, nonce: Uint8Array(12), aad, aadOffset, aadLength): starts a record. */
static napi_value begin(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  uint8_t *iv, *aad;
  size_t ivn;
  uint32_t len;
  int outl;
  if (!args_of(env, info, 5, argv, "begin(ctx, nonce, aad, offset, length)")) return NULL;
  Gcm *g = gcm_of(env, argv[0]);
  if (g == NULL || !bytes_of(env, argv[1], &iv, &ivn, "nonce must be a Uint8Array") || !u32_of(env, argv[4], &len) ||
      !span_of(env, argv[2], argv[3], len, &aad, "aad: a Uint8Array, and the range inside it"))
    return NULL;
  if (ivn != 12) return fail(env, "nonce must be 12 bytes");
  if (!EVP_CipherInit_ex(g->ctx, NULL, NULL, NULL, iv, g->decrypt ? 0 : 1)) return fail(env, "AES-256-GCM: cannot set the nonce");
  if (len > 0 && !EVP_CipherUpdate(g->ctx, NULL, &outl, aad, (int)len)) return fail(env, "AES-256-GCM: aad failed");
  return NULL;
}

/*
 * update(ctx, src, srcOffset, length, dst, dstOffset): seals or opens src's range into dst at
 * dstOffset (dst may be src, at the same offset: in place). dst null: the range is more
 * authenticated data (authenticate-only records).
 */
static napi_value update(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  uint8_t *src, *dst = NULL;
  uint32_t len;
  napi_valuetype dt;
  int outl;
  if (!args_of(env, info, 6, argv, "update(ctx, src, offset, length, dst, dstOffset)")) return NULL;
  Gcm *g = gcm_of(env, argv[0]);
  if (g == NULL || !u32_of(env, argv[3], &len) ||
      !span_of(env, argv[1], argv[2], len, &src, "src: a Uint8Array, and the range inside it"))
    return NULL;
  if (napi_typeof(env, argv[4], &dt) != napi_ok) return fail(env, "bad dst");
  if (dt != napi_null && !span_of(env, argv[4], argv[5], len, &dst, "dst: a Uint8Array or null, and the range inside it"))
    return NULL;
  if (len == 0) return NULL;
  if (!EVP_CipherUpdate(g->ctx, dst, &outl, src, (int)len)) return fail(env, "AES-256-GCM: update failed");
  return NULL;
}

/*
 * finish(ctx, tag, tagOffset): ends the record. Sealing writes the 16-byte tag there and returns
 * true; opening checks the tag found there and returns whether the record is authentic.
 */
static napi_value finish(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  uint8_t *tag;
  uint8_t none[16];
  int outl, ok;
  napi_value result;
  if (!args_of(env, info, 3, argv, "finish(ctx, tag, offset)")) return NULL;
  Gcm *g = gcm_of(env, argv[0]);
  if (g == NULL || !span_of(env, argv[1], argv[2], 16, &tag, "tag: a Uint8Array with 16 bytes at the offset")) return NULL;
  if (g->decrypt) {
    ok = EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) && EVP_DecryptFinal_ex(g->ctx, none, &outl) > 0;
  } else {
    if (!EVP_EncryptFinal_ex(g->ctx, none, &outl) || !EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_GET_TAG, 16, tag))
      return fail(env, "AES-256-GCM: final failed");
    ok = 1;
  }
  if (napi_get_boolean(env, ok, &result) != napi_ok) return NULL;
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor d[] = {
      {"create", NULL, create, NULL, NULL, NULL, napi_default, NULL},
      {"begin", NULL, begin, NULL, NULL, NULL, napi_default, NULL},
      {"update", NULL, update, NULL, NULL, NULL, napi_default, NULL},
      {"finish", NULL, finish, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, 4, d) != napi_ok) return NULL;
  return exports;
}
