/* SPDX-License-Identifier: MIT */
/* loop.h - the small things every object on the GLib main loop needs: sources it starts
 * and stops, and a guard for objects that may be freed from inside their own
 * callbacks. One meaning everywhere: a source attached here belongs to its context (the
 * pointer stays valid until loop_cancel() or until its callback returns
 * G_SOURCE_REMOVE, after which the owner must forget it), and loop_leave() says true
 * when the object must be destroyed now. */
#ifndef BL_LOOP_H
#define BL_LOOP_H

#include <stdbool.h>

#include <glib.h>

GSource *loop_attach(GMainContext *ctx, GSource *src, GSourceFunc fn, void *ud);
GSource *loop_timeout(GMainContext *ctx, unsigned ms, GSourceFunc fn, void *ud);
/* An idle source at `priority` (G_PRIORITY_HIGH for what must run before any I/O). */
GSource *loop_idle(GMainContext *ctx, int priority, GSourceFunc fn, void *ud);
/* Stop *src if it runs, and forget it. */
void loop_cancel(GSource **src);

/* For an object whose free function may be called while one of its callbacks is on the
 * stack: free marks it, and the outermost leave destroys it. */
typedef struct loop_guard {
    int depth;
    bool freed;
} loop_guard_t;

static inline void loop_enter(loop_guard_t *g)
{
    g->depth++;
}

/* True when the object was freed meanwhile and nothing of it is on the stack any more:
 * the caller destroys it now and does not touch it again. */
static inline bool loop_leave(loop_guard_t *g)
{
    return --g->depth == 0 && g->freed;
}

/* loop_leave, and destroy(obj) when it says so. True when the object is gone: the
 * caller does not touch it again. */
static inline bool loop_leave_destroy(loop_guard_t *g, void (*destroy)(void *), void *obj)
{
    if (!loop_leave(g))
        return false;
    destroy(obj);
    return true;
}

/* Mark the object freed; true when it can be destroyed at once (not inside itself). */
static inline bool loop_free(loop_guard_t *g)
{
    g->freed = true;
    return g->depth == 0;
}

#endif
