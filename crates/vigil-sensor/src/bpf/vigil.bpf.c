/* Vigil's eBPF sensor: one compilation unit, one probe per file under probes/. */
#include "common.h"
#include "probes/exec.bpf.h"
#include "probes/fork.bpf.h"
#include "probes/exit.bpf.h"
#include "probes/syscalls.bpf.h"
