/* Maps and helpers shared by Vigil's probes. */
#ifndef VIGIL_COMMON_H
#define VIGIL_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "vigil.h"

char LICENSE[] SEC("license") = "GPL";

/* Every record goes through this ring buffer; user space sets its size before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024);
} vigil_events SEC(".maps");

/* Records that did not fit in the ring buffer, per CPU and per kind. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, VIGIL_KIND_MAX);
	__type(key, __u32);
	__type(value, __u64);
} vigil_drops SEC(".maps");

/* Settings written by user space after load (index 0). Mappable: the reader notes
 * when it was last awake with a store to its mapping, not a syscall per wake-up. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vigil_config);
} vigil_cfg SEC(".maps");

/* Commands whose events are dropped here, in the kernel (key: comm, zero-padded). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, char[VIGIL_COMM_LEN]);
	__type(value, __u8);
} vigil_comm_filter SEC(".maps");

/* Scratch space for building an exec record (too big for the 512-byte BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vigil_exec);
} vigil_exec_scratch SEC(".maps");

/* Scratch space for building a syscall record. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vigil_syscall);
} vigil_sys_scratch SEC(".maps");

/* Wake the reader only once this much is waiting: batching wakeups saves a context
 * switch per record. User space polls with a short timeout for the rest. Exec records
 * may wake it at once (exec_wakeup_flag). */
#define VIGIL_WAKEUP_BYTES (256 * 1024)

static __always_inline __u64 wakeup_flag(void)
{
	return bpf_ringbuf_query(&vigil_events, BPF_RB_AVAIL_DATA) >= VIGIL_WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP
											: BPF_RB_NO_WAKEUP;
}

/* An exec record wakes the reader unless the reader was awake within the configured gap
 * (a finding on an exec is due within a millisecond or two): while execs come fast, the
 * reader, polling with that gap as its timeout, picks them up without a wake-up each. */
static __always_inline __u64 exec_wakeup_flag(void)
{
	__u32 zero = 0;
	struct vigil_config *cfg = bpf_map_lookup_elem(&vigil_cfg, &zero);
	if (!cfg || !cfg->exec_wake_gap_ns)
		return wakeup_flag();
	__u64 now = bpf_ktime_get_boot_ns();
	if (now - cfg->last_wake_ns < cfg->exec_wake_gap_ns)
		return wakeup_flag();
	cfg->last_wake_ns = now;
	return BPF_RB_FORCE_WAKEUP;
}

static __always_inline void count_drop(__u32 kind)
{
	__u64 *n = bpf_map_lookup_elem(&vigil_drops, &kind);
	if (n)
		__sync_fetch_and_add(n, 1);
}

/* Whether events of this task are to be left out: the agent's own, and those of
 * excluded commands. */
static __always_inline bool is_filtered(struct task_struct *task)
{
	__u32 zero = 0;
	struct vigil_config *cfg = bpf_map_lookup_elem(&vigil_cfg, &zero);
	if (cfg && cfg->agent_tgid == BPF_CORE_READ(task, tgid))
		return true;
	char comm[VIGIL_COMM_LEN] = {};
	BPF_CORE_READ_STR_INTO(&comm, task, comm);
	return bpf_map_lookup_elem(&vigil_comm_filter, comm) != NULL;
}

/* start_boottime where the kernel has it (5.5+), else the monotonic start. */
static __always_inline __u64 task_start(struct task_struct *t)
{
	if (bpf_core_field_exists(t->start_boottime))
		return BPF_CORE_READ(t, start_boottime);
	return BPF_CORE_READ(t, start_time);
}

static __always_inline void fill_header(struct vigil_header *h, __u32 kind, __u32 size,
					struct task_struct *task)
{
	/* The process is its thread group leader: a thread's own start time would give
	 * each thread another process identity. Likewise the parent process is the leader
	 * of whichever of its threads forked. */
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);
	struct task_struct *parent = BPF_CORE_READ(leader, real_parent, group_leader);
	h->kind = kind;
	h->size = size;
	h->ktime = bpf_ktime_get_boot_ns();
	h->pid = BPF_CORE_READ(task, tgid);
	h->tid = BPF_CORE_READ(task, pid);
	h->ppid = BPF_CORE_READ(parent, tgid);
	h->pad = 0;
	h->start_boottime = task_start(leader);
	h->parent_start_boottime = task_start(parent);
	h->cgroup_id = bpf_get_current_cgroup_id();
	BPF_CORE_READ_STR_INTO(&h->comm, task, comm);
}

/* Reads a capability set as 64 bits whatever its layout (u64 since 6.3, u32[2] before). */
static __always_inline __u64 read_caps(const kernel_cap_t *caps)
{
	__u64 v = 0;
	bpf_probe_read_kernel(&v, sizeof(v), caps);
	return v;
}

static __always_inline void fill_creds(struct vigil_creds *c, struct task_struct *task)
{
	const struct cred *cred = BPF_CORE_READ(task, cred);
	c->uid = BPF_CORE_READ(cred, uid.val);
	c->gid = BPF_CORE_READ(cred, gid.val);
	c->euid = BPF_CORE_READ(cred, euid.val);
	c->egid = BPF_CORE_READ(cred, egid.val);
	c->suid = BPF_CORE_READ(cred, suid.val);
	c->sgid = BPF_CORE_READ(cred, sgid.val);
	c->fsuid = BPF_CORE_READ(cred, fsuid.val);
	c->fsgid = BPF_CORE_READ(cred, fsgid.val);
	c->cap_effective = read_caps(__builtin_preserve_access_index(&cred->cap_effective));
	c->cap_permitted = read_caps(__builtin_preserve_access_index(&cred->cap_permitted));
	c->cap_inheritable = read_caps(__builtin_preserve_access_index(&cred->cap_inheritable));
	c->loginuid = (__u32)-1;
	c->sessionid = (__u32)-1;
	if (bpf_core_field_exists(task->loginuid)) {
		c->loginuid = BPF_CORE_READ(task, loginuid.val);
		c->sessionid = BPF_CORE_READ(task, sessionid);
	}
}

/* State of one path walk, carried across bpf_loop iterations. */
struct walk_ctx {
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	__u32 off;
	__u32 slot; /* 0: exec record's exe[], 1: its cwd[], 2: syscall record's str0[], 3: its base[] */
	bool truncated;
	bool done;
};

static long walk_step(__u32 i, void *arg)
{
	struct walk_ctx *w = arg;
	struct dentry *dentry = w->dentry;
	struct vfsmount *vfsmnt = w->vfsmnt;
	struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
	struct dentry *mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
	/* A pseudo file (memfd, pipe, socket) has a dentry that is its own parent but not
	 * the root of its mount: its name is the whole path. */
	bool pseudo = dentry == parent && dentry != mnt_root;
	if (!pseudo && (dentry == mnt_root || dentry == parent)) {
		struct mount *mnt = w->mnt;
		struct mount *mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
		if (mnt == mnt_parent) {
			w->done = true;
			return 1; /* reached the root of everything */
		}
		w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = mnt_parent;
		w->vfsmnt = __builtin_preserve_access_index(&mnt_parent->mnt);
		return 0;
	}
	__u32 off = w->off;
	if (off > VIGIL_PATH_LEN - VIGIL_NAME_LEN) {
		w->truncated = true;
		return 1;
	}
	__u32 zero = 0;
	char *buf;
	if (w->slot >= 2) {
		struct vigil_syscall *r = bpf_map_lookup_elem(&vigil_sys_scratch, &zero);
		if (!r)
			return 1;
		buf = w->slot == 2 ? r->str0 : r->base;
	} else {
		struct vigil_exec *e = bpf_map_lookup_elem(&vigil_exec_scratch, &zero);
		if (!e)
			return 1;
		buf = w->slot ? e->cwd : e->exe;
	}
	const unsigned char *name = BPF_CORE_READ(dentry, d_name.name);
	long n = bpf_probe_read_kernel_str(&buf[off & (VIGIL_PATH_LEN - 1)], VIGIL_NAME_LEN, name);
	if (n <= 0) {
		w->done = true;
		return 1;
	}
	w->off = off + n;
	w->dentry = parent;
	if (pseudo) {
		w->done = true;
		return 1;
	}
	return 0;
}

/* Writes the path of (dentry, vfsmount) into the exec scratch record's exe[] (slot 0)
 * or cwd[] (slot 1), or the syscall scratch record's str0[] (slot 2), as NUL-terminated components, leaf first, crossing mount points up
 * to the root. Returns the bytes used; sets *truncated when the path was deeper or
 * longer than the slot. */
static __always_inline __u16 walk_path(__u32 slot, struct dentry *dentry, struct vfsmount *vfsmnt,
				       bool *truncated)
{
	struct walk_ctx w = {
		.dentry = dentry,
		.vfsmnt = vfsmnt,
		.mnt = container_of(vfsmnt, struct mount, mnt),
		.off = 0,
		.slot = slot,
		.truncated = false,
		.done = false,
	};
	bpf_loop(VIGIL_PATH_DEPTH, walk_step, &w, 0);
	*truncated = w.truncated || !w.done;
	return w.off;
}

#endif
