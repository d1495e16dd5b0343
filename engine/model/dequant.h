/* Conversion of stored tensor element types to fp32 (the CPU path runs in fp32). */
#ifndef YAIE_DEQUANT_H
#define YAIE_DEQUANT_H

#include <stddef.h>
#include <stdint.h>

float yaie_f16_to_f32(uint16_t h);
float yaie_bf16_to_f32(uint16_t h);
uint16_t yaie_f32_to_bf16(float f);
uint16_t yaie_f32_to_f16(float f);
/* Dequantizes n elements of ggml type `type` (F32, F16, BF16, Q8_0, Q4_0, Q4_1) from src; returns
 * 0 on success, -1 for an unknown type or an n that is not a whole number of blocks. */
int yaie_dequantize(uint32_t type, const void *src, float *dst, size_t n);

#endif
