/* Process creation: tp_btf/sched_process_fork, for new processes (not threads). */

static __always_inline int try_fork(struct task_struct *parent, struct task_struct *child)
{
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0; /* a new thread */
	if (is_filtered(parent))
		return 0;
	struct vigil_fork *e = bpf_ringbuf_reserve(&vigil_events, sizeof(*e), 0);
	if (!e) {
		count_drop(VIGIL_FORK);
		return 0;
	}
	fill_header(&e->h, VIGIL_FORK, sizeof(*e), child);
	/* The child may not be linked to its parent yet: name the parent explicitly (its
	 * process: the leader of the thread that forked). */
	e->h.ppid = BPF_CORE_READ(parent, tgid);
	e->h.parent_start_boottime = task_start(BPF_CORE_READ(parent, group_leader));
	fill_creds(&e->creds, child);
	bpf_ringbuf_submit(e, wakeup_flag());
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(vigil_fork, struct task_struct *parent, struct task_struct *child)
{
	return try_fork(parent, child);
}
