/* Element type conversions. The block layouts are ggml's: Q8_0 = {f16 d; int8 q[32]},
 * Q4_0 = {f16 d; u8 q[16]} (low nibbles are elements 0..15, high nibbles 16..31, offset 8),
 * Q4_1 = {f16 d; f16 m; u8 q[16]} (x = q*d + m). */
#include <string.h>

#include "dequant.h"
#include "gguf.h"

float yaie_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { /* subnormal: normalize */
      int e = -1;
      do {
        e++;
        man <<= 1;
      } while (!(man & 0x400));
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

float yaie_bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t yaie_f32_to_bf16(float f) {
  uint32_t bits;
  memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) /* NaN stays NaN */
    return (uint16_t)((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1); /* round to nearest even */
  return (uint16_t)(bits >> 16);
}

uint16_t yaie_f32_to_f16(float f) {
  uint32_t bits;
  memcpy(&bits, &f, 4);
  uint32_t sign = (bits >> 16) & 0x8000;
  int32_t exp = (int32_t)((bits >> 23) & 0xff) - 127 + 15;
  uint32_t man = bits & 0x7fffff;
  if (((bits >> 23) & 0xff) == 0xff)
    return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
  if (exp >= 31)
    return (uint16_t)(sign | 0x7c00);
  if (exp <= 0) {
    if (exp < -10)
      return (uint16_t)sign;
    man |= 0x800000;
    uint32_t shift = (uint32_t)(14 - exp);
    uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1)))
      half++;
    return (uint16_t)(sign | half);
  }
  uint32_t h = sign | ((uint32_t)exp << 10) | (man >> 13);
  uint32_t rem = man & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
    h++; /* may carry into the exponent, which is the correct rounding */
  return (uint16_t)h;
}

static uint16_t load_u16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

int yaie_dequantize(uint32_t type, const void *src, float *dst, size_t n) {
  const unsigned char *p = src;
  switch (type) {
  case GGML_F32:
    memcpy(dst, src, n * 4);
    return 0;
  case GGML_F16:
    for (size_t i = 0; i < n; i++)
      dst[i] = yaie_f16_to_f32(load_u16(p + 2 * i));
    return 0;
  case GGML_BF16:
    for (size_t i = 0; i < n; i++)
      dst[i] = yaie_bf16_to_f32(load_u16(p + 2 * i));
    return 0;
  default:
    break;
  }
  if (n % 32)
    return -1;
  for (size_t b = 0; b < n / 32; b++, dst += 32) {
    if (type == GGML_Q8_0) {
      const unsigned char *blk = p + b * 34;
      float d = yaie_f16_to_f32(load_u16(blk));
      for (int j = 0; j < 32; j++)
        dst[j] = d * (float)(int8_t)blk[2 + j];
    } else if (type == GGML_Q4_0) {
      const unsigned char *blk = p + b * 18;
      float d = yaie_f16_to_f32(load_u16(blk));
      for (int j = 0; j < 16; j++) {
        dst[j] = d * (float)((blk[2 + j] & 0xf) - 8);
        dst[j + 16] = d * (float)((blk[2 + j] >> 4) - 8);
      }
    } else if (type == GGML_Q4_1) {
      const unsigned char *blk = p + b * 20;
      float d = yaie_f16_to_f32(load_u16(blk)), m = yaie_f16_to_f32(load_u16(blk + 2));
      for (int j = 0; j < 16; j++) {
        dst[j] = d * (float)(blk[4 + j] & 0xf) + m;
        dst[j + 16] = d * (float)(blk[4 + j] >> 4) + m;
      }
    } else {
      return -1;
    }
  }
  return 0;
}
