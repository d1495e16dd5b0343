/* Inside the engine: a sampler as a backend that samples on its own device needs it. */
#ifndef YAIE_SAMPLER_H
#define YAIE_SAMPLER_H

#include "backend.h"

/* Fills req's parameters, penalty tokens and counts from the sampler, and takes the random draw
 * for this step from its stream exactly as yaie_sampler_sample would (temperature > 0 only), so
 * a seed gives the same draws on every backend. The caller sets logit_row and mask. */
void yaie_sampler_request(yaie_sampler *s, yaie_sample_req *req);

/* Takes n draws from the sampler's stream, as n calls of yaie_sampler_sample would (temperature
 * > 0; a greedy sampler takes none and writes zeros). */
void yaie_sampler_draws(yaie_sampler *s, int n, float *out);
/* Whether the sampler applies a penalty (its counts change with every accepted token). */
int yaie_sampler_has_penalties(const yaie_sampler *s);
/* Its parameters. */
const yaie_sampler_params *yaie_sampler_params_of(const yaie_sampler *s);

#endif
