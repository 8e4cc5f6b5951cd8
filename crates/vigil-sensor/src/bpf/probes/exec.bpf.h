/* Process exec: tp_btf/sched_process_exec, after the new image is in place. */

/* Which of the first 64 * VIGIL_OPEN_FDS_WORDS descriptors are open now (the exec has
 * closed the close-on-exec ones), so user space knows which files the exec closed. */
static __always_inline void open_fds(struct vigil_exec *e, struct task_struct *task)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	unsigned long *bits = BPF_CORE_READ(fdt, open_fds);
	if (max > 64 * VIGIL_OPEN_FDS_WORDS)
		max = 64 * VIGIL_OPEN_FDS_WORDS;
	e->open_fds_max = 0;
	for (int i = 0; i < VIGIL_OPEN_FDS_WORDS; i++) {
		e->open_fds[i] = 0;
		/* The bitmap is max_fds bits long: read no word past it. */
		if ((i + 1) * 64 <= max && bits &&
		    bpf_probe_read_kernel(&e->open_fds[i], 8, &bits[i]) == 0)
			e->open_fds_max = (i + 1) * 64;
	}
}

static __always_inline int try_exec(struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	if (is_filtered(task))
		return 0;
	__u32 zero = 0;
	struct vigil_exec *e = bpf_map_lookup_elem(&vigil_exec_scratch, &zero);
	if (!e)
		return 0;
	e->flags = 0;
	e->old_pid = old_pid;
	fill_creds(&e->creds, task);
	open_fds(e, task);

	/* The executable, from the file actually executed (not the name asked for). */
	struct file *file = BPF_CORE_READ(bprm, file);
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	e->exe_ino = BPF_CORE_READ(inode, i_ino);
	e->exe_dev = BPF_CORE_READ(inode, i_sb, s_dev);
	e->exe_nlink = BPF_CORE_READ(inode, __i_nlink);
	if (e->exe_nlink == 0)
		e->flags |= VIGIL_EXEC_EXE_UNLINKED;
	if (bpf_core_field_exists(inode->i_mtime_sec)) {
		e->exe_mtime_sec = BPF_CORE_READ(inode, i_mtime_sec);
		e->exe_mtime_nsec = BPF_CORE_READ(inode, i_mtime_nsec);
	} else {
		e->exe_mtime_sec = 0;
		e->exe_mtime_nsec = 0;
	}
	bool trunc = false;
	e->exe_len = walk_path(0, BPF_CORE_READ(file, f_path.dentry), BPF_CORE_READ(file, f_path.mnt), &trunc);
	if (trunc)
		e->flags |= VIGIL_EXEC_EXE_TRUNCATED;

	struct fs_struct *fs = BPF_CORE_READ(task, fs);
	e->cwd_len = walk_path(1, BPF_CORE_READ(fs, pwd.dentry), BPF_CORE_READ(fs, pwd.mnt), &trunc);
	if (trunc)
		e->flags |= VIGIL_EXEC_CWD_TRUNCATED;

	long n = bpf_probe_read_kernel_str(e->filename, VIGIL_FILENAME_LEN, BPF_CORE_READ(bprm, filename));
	e->filename_len = n > 0 ? n : 0;

	e->tty[0] = 0;
	struct tty_struct *tty = BPF_CORE_READ(task, signal, tty);
	if (tty)
		BPF_CORE_READ_STR_INTO(&e->tty, tty, name);

	/* argv, straight from the new image's memory. */
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	unsigned long start = BPF_CORE_READ(mm, arg_start);
	unsigned long end = BPF_CORE_READ(mm, arg_end);
	unsigned long len = end > start ? end - start : 0;
	if (len > VIGIL_ARGV_LEN) {
		len = VIGIL_ARGV_LEN;
		e->flags |= VIGIL_EXEC_ARGV_TRUNCATED;
	}
	len &= (VIGIL_ARGV_LEN - 1) | VIGIL_ARGV_LEN;
	if (len > VIGIL_ARGV_LEN)
		len = VIGIL_ARGV_LEN;
	if (len && bpf_probe_read_user(e->argv, len, (void *)start) != 0) {
		e->flags |= VIGIL_EXEC_ARGV_FAULT;
		len = 0;
	}
	e->argv_len = len;

	__u32 size = offsetof(struct vigil_exec, argv) + len;
	fill_header(&e->h, VIGIL_EXEC, size, task);
	if (size > sizeof(*e))
		size = sizeof(*e);
	if (bpf_ringbuf_output(&vigil_events, e, size, BPF_RB_FORCE_WAKEUP) != 0)
		count_drop(VIGIL_EXEC);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(vigil_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	return try_exec(task, old_pid, bprm);
}
