/* Inside the engine: a sampler as a backend that samples on its own device needs it. */
#ifndef YAIE_SAMPLER_H
#define YAIE_SAMPLER_H

#include "backend.h"

/* Fills req's parameters, penalty tokens and counts from the sampler, and takes the random draw
 * for this step from its stream exactly as yaie_sampler_sample would (temperature > 0 only), so
 * a seed gives the same draws on every backend. The caller sets logit_row and mask. */
void yaie_sampler_request(yaie_sampler *s, yaie_sample_req *req);

#endif
