// CFaultInjection: real faults for the fault-signal tests, in C because Swift cannot provoke
// most of them (it traps with ud2 where C divides by zero, and has no int3 or seccomp).
// Each function provokes its signal in the calling thread and should not return; if it does
// (the signal was swallowed) it returns 0, or -1 with errno set if it could not set up the fault.
#ifndef CFAULTINJECTION_H
#define CFAULTINJECTION_H

int fault_segv(void);
int fault_bus(void);
int fault_ill(void);
int fault_fpe(void);
int fault_abrt(void);
int fault_trap(void);
int fault_sys(void);

#endif
