// Running a function on a stack of the caller's choosing, for the engine's interpreter
// when it runs on the thread that calls it (Configuration.runsOnCallingThread).
// makecontext is variadic, which Swift cannot call: hence this header. Its functions are
// inline, compiled into the Swift module that imports them (no C target of its own).
#ifndef FLOW_CSTACK_H
#define FLOW_CSTACK_H

#include <stddef.h>
#include <stdint.h>
#include <ucontext.h>

struct flow_stack_call {
    ucontext_t caller;
    ucontext_t callee;
    void (*body)(void *);
    void *context;
};

// makecontext passes only ints to the function it starts: the call's address comes in
// two halves.
static void flow_stack_trampoline(unsigned int high, unsigned int low) {
    struct flow_stack_call *c = (struct flow_stack_call *)(((uintptr_t)high << 32) | (uintptr_t)low);
    c->body(c->context);
    // Returning resumes `uc_link`: the caller, just after its swapcontext.
}

/// Calls `body(context)` on the calling thread with its stack pointer in the stack
/// [base, base + size) instead of the thread's own, and returns when `body` does.
/// Returns 0, or -1 when the switch could not be made (`errno` says why; `body` did not
/// run). `body` must return normally: nothing may unwind or jump out of it.
static inline int flow_call_on_stack(void *base, size_t size, void (*body)(void *), void *context) {
    struct flow_stack_call c;
    c.body = body;
    c.context = context;
    if (getcontext(&c.callee) != 0) return -1;
    c.callee.uc_stack.ss_sp = base;
    c.callee.uc_stack.ss_size = size;
    c.callee.uc_link = &c.caller;
    uintptr_t address = (uintptr_t)&c;
    makecontext(&c.callee, (void (*)(void))flow_stack_trampoline, 2,
                (unsigned int)(address >> 32), (unsigned int)(address & 0xffffffffu));
    return swapcontext(&c.caller, &c.callee);
}

#endif
