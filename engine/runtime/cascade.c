/* Cascade groups: checked once for every backend, turned into a per-sequence plan. */
#include <stdlib.h>
#include <string.h>

#include "cascade.h"
#include "error.h"

void yaie_cascade_plan_free(yaie_cascade_plan *plan) {
  if (!plan)
    return;
  free(plan->own_start);
  free(plan->part_off);
  free(plan->parts);
  free(plan->group_off);
  memset(plan, 0, sizeof *plan);
}

/* The group's members share its positions' pages: each member's table names the same page as
 * the first member's for every page touching [start, end). */
static yaie_status check_pages(const yaie_batch *b, const yaie_group *g, int gi, int page_size) {
  const yaie_seq *first = &b->seqs[g->rows[0]];
  int p0 = g->start / page_size, p1 = (g->end - 1) / page_size;
  for (int j = 1; j < g->n_rows; j++) {
    const yaie_seq *q = &b->seqs[g->rows[j]];
    for (int p = p0; p <= p1; p++)
      if (q->pages[p] != first->pages[p])
        return yaie_fail(YAIE_ERR_ARG, "cascade: group %d's members %d and %d hold different pages (%d, %d) at page %d",
                         gi, g->rows[0], g->rows[j], first->pages[p], q->pages[p], p);
  }
  return YAIE_OK;
}

yaie_status yaie_cascade_check(const yaie_batch *b, int page_size, yaie_cascade_plan *plan) {
  if (plan)
    memset(plan, 0, sizeof *plan);
  if (b->n_groups < 0 || (b->n_groups > 0 && !b->groups))
    return yaie_fail(YAIE_ERR_ARG, "cascade: %d groups but no group array", b->n_groups);
  if (b->n_groups == 0)
    return YAIE_OK;
  int n = b->n_seqs, pairs = 0;
  for (int g = 0; g < b->n_groups; g++) {
    const yaie_group *gr = &b->groups[g];
    if (gr->n_rows < 1 || !gr->rows)
      return yaie_fail(YAIE_ERR_ARG, "cascade: group %d has no members", g);
    if (gr->start < 0 || gr->end <= gr->start)
      return yaie_fail(YAIE_ERR_ARG, "cascade: group %d's range [%d, %d) is empty or negative", g, gr->start, gr->end);
    for (int j = 0; j < gr->n_rows; j++) {
      int s = gr->rows[j];
      if (s < 0 || s >= n)
        return yaie_fail(YAIE_ERR_ARG, "cascade: group %d names sequence %d, outside the batch's %d", g, s, n);
      const yaie_seq *q = &b->seqs[s];
      if (q->n_tokens != 1 || q->all_logits)
        return yaie_fail(YAIE_ERR_ARG, "cascade: sequence %d in group %d is not decoding (one new token)", s, g);
      if (gr->end > q->pos)
        return yaie_fail(YAIE_ERR_ARG, "cascade: group %d ends at %d, past sequence %d's cached positions (%d)", g,
                         gr->end, s, q->pos);
    }
    YAIE_TRY(check_pages(b, gr, g, page_size));
    pairs += gr->n_rows;
  }
  /* Each member's groups, sorted by start, must tile [0, e). */
  int *own = malloc((size_t)n * sizeof *own), *count = calloc((size_t)n + 1, sizeof *count);
  int *off = NULL, *parts = NULL, *goff = NULL;
  yaie_status st = YAIE_OK;
  if (!own || !count) {
    st = yaie_fail(YAIE_ERR_NOMEM, "cascade: out of memory");
    goto fail;
  }
  for (int s = 0; s < n; s++)
    own[s] = -1;
  for (int g = 0; g < b->n_groups; g++)
    for (int j = 0; j < b->groups[g].n_rows; j++)
      count[b->groups[g].rows[j]]++;
  off = malloc(((size_t)n + 1) * sizeof *off);
  parts = malloc((size_t)(pairs ? pairs : 1) * sizeof *parts);
  goff = malloc((size_t)b->n_groups * sizeof *goff);
  if (!off || !parts || !goff) {
    st = yaie_fail(YAIE_ERR_NOMEM, "cascade: out of memory");
    goto fail;
  }
  off[0] = 0;
  for (int s = 0; s < n; s++)
    off[s + 1] = off[s] + count[s];
  memset(count, 0, ((size_t)n + 1) * sizeof *count);
  for (int g = 0, k = 0; g < b->n_groups; g++) {
    goff[g] = k;
    for (int j = 0; j < b->groups[g].n_rows; j++, k++) {
      int s = b->groups[g].rows[j];
      parts[off[s] + count[s]++] = k;
    }
  }
  /* Walk each member's groups in order of start: they must continue where the last one ended. */
  for (int s = 0; s < n && st == YAIE_OK; s++) {
    int e = 0;
    for (int done = 0; done < count[s]; done++) {
      int next = -1;
      for (int i = off[s]; i < off[s + 1]; i++) {
        int k = parts[i], g = 0;
        while (g + 1 < b->n_groups && goff[g + 1] <= k)
          g++;
        if (b->groups[g].start == e) {
          next = g;
          break;
        }
      }
      if (next < 0) {
        st = yaie_fail(YAIE_ERR_ARG, "cascade: sequence %d's groups leave a gap or overlap at position %d", s, e);
        break;
      }
      e = b->groups[next].end;
    }
    if (count[s])
      own[s] = e;
  }
  if (st != YAIE_OK)
    goto fail;
  if (!plan) {
    free(own);
    free(count);
    free(off);
    free(parts);
    free(goff);
    return YAIE_OK;
  }
  free(count);
  *plan = (yaie_cascade_plan){n, b->n_groups, pairs, own, off, parts, goff};
  return YAIE_OK;
fail:
  free(own);
  free(count);
  free(off);
  free(parts);
  free(goff);
  return st;
}
