/* Cascade groups inside the engine: their check against the batch, and the plan every backend
 * computes from them (which sequence's own part starts where, which group parts it merges). */
#ifndef YAIE_CASCADE_H
#define YAIE_CASCADE_H

#include "yaie.h"

/* What a backend needs per sequence: own_start[s] (-1: not in any group, plain attention) and the
 * group parts it merges, parts[part_off[s] .. part_off[s + 1]), each the index of a (group,
 * member) pair: group_off[g] + j for member j of group g. */
typedef struct yaie_cascade_plan {
  int n_seqs, n_groups, n_pairs;
  int *own_start, *part_off, *parts, *group_off;
} yaie_cascade_plan;

/* Checks the batch's groups (members decoding, ranges inside their positions, covering [0, e)
 * per member without gaps or overlap, the same pages across members); fills plan when not NULL
 * (free it with yaie_cascade_plan_free). A batch without groups gives an empty plan. */
yaie_status yaie_cascade_check(const yaie_batch *b, int page_size, yaie_cascade_plan *plan);
void yaie_cascade_plan_free(yaie_cascade_plan *plan);

#endif
