// Package cpusched puts the process's threads in the kernel's batch
// scheduling class. das does this when it only follows audit logs: it then
// shares the machine with the database it audits, and its work is never in
// a client's path.
//
// SCHED_BATCH keeps the same share of CPU as any other thread (nice 0, so a
// tailer does not fall behind), but a batch thread that wakes up does not
// preempt the one running. On a database host that means das's sealing
// bursts no longer interrupt a database thread in the middle of a
// statement, possibly holding a lock others wait for. With das following
// server_audit on a 2-core machine, sysbench kept 0.942 of the plugin-only
// QPS with batch scheduling and 0.877 without in one run, 0.883 and 0.857
// in another (docs/PERFORMANCE.md): a small gain, but in every run.
package cpusched
