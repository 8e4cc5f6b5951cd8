/* Process exit: tp_btf/sched_process_exit, when the thread group leader exits. */

static __always_inline int try_exit(struct task_struct *task)
{
	if (BPF_CORE_READ(task, pid) != BPF_CORE_READ(task, tgid))
		return 0; /* a thread */
	if (is_filtered(task))
		return 0;
	struct vigil_exit *e = bpf_ringbuf_reserve(&vigil_events, sizeof(*e), 0);
	if (!e) {
		count_drop(VIGIL_EXIT);
		return 0;
	}
	fill_header(&e->h, VIGIL_EXIT, sizeof(*e), task);
	e->exit_code = BPF_CORE_READ(task, exit_code);
	e->pad = 0;
	bpf_ringbuf_submit(e, wakeup_flag());
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(vigil_exit, struct task_struct *task)
{
	return try_exit(task);
}
