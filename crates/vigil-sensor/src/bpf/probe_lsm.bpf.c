/* Feature probe: does this kernel accept BPF-LSM programs? Loaded once at start, then
 * dropped. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("lsm/bprm_check_security")
int BPF_PROG(vigil_probe_lsm, struct linux_binprm *bprm, int ret)
{
	return ret;
}
