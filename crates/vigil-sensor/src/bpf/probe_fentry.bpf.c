/* Feature probe: does this kernel accept fentry programs? Loaded once at start, then
 * dropped. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("fentry/do_unlinkat")
int BPF_PROG(vigil_probe_fentry, int dfd, struct filename *name)
{
	return 0;
}
