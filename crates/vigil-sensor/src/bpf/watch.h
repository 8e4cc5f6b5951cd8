/* The watch list (sensor.watched_reads): which read-only opens sys_exit reports. The
 * kernel side checks the opened file's name and its parent directory's name against
 * each pattern with bounded masked compares (no path walk); user space (watch.rs)
 * matches the whole path of those reported. Included by probes/syscalls.bpf.h, after
 * fd_file. */

/* The watch list: files whose read-only opens are reported (set by user space). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vigil_watch);
} vigil_watch SEC(".maps");

/* A dentry's name: its first 16 bytes (as two words; what follows the name is not
 * zeroed), its length and where it is. */
struct name16 {
	__u64 w[2];
	__u32 len;
	const unsigned char *at;
};

static __always_inline bool dentry_name(struct dentry *d, struct name16 *n)
{
	struct qstr q = {};
	if (!d || bpf_probe_read_kernel(&q, sizeof(q), __builtin_preserve_access_index(&d->d_name)) != 0)
		return false;
	n->len = q.len;
	n->at = q.name;
	n->w[0] = n->w[1] = 0;
	/* Inline names have 32 bytes or more of room, others are as long as 32 at least. */
	return bpf_probe_read_kernel(n->w, sizeof(n->w), q.name) == 0;
}

/* The last 8 bytes of a name (for a shorter one, the name shifted to the top). */
static __always_inline __u64 name_suffix(const struct name16 *n)
{
	__u64 v = 0;
	if (n->len >= 8) {
		bpf_probe_read_kernel(&v, sizeof(v), n->at + (n->len & 0xffff) - 8);
		return v;
	}
	return n->len ? n->w[0] << (64 - 8 * n->len) : 0;
}

static __always_inline bool words_match(const __u64 *w, const __u64 *want, const __u64 *mask)
{
	return (w[0] & mask[0]) == want[0] && (w[1] & mask[1]) == want[1];
}

/* State of one check against the watch list, carried across bpf_loop iterations. */
struct watch_ctx {
	struct name16 leaf;
	struct name16 parent;
	struct dentry *dentry;
	__u64 suffix;
	bool have_suffix;
	bool have_parent;
	bool hit;
};

/* Checks the file against pattern i of the watch list; stops at a match. */
static long watch_step(__u32 i, void *arg)
{
	struct watch_ctx *c = arg;
	__u32 zero = 0;
	struct vigil_watch *wl = bpf_map_lookup_elem(&vigil_watch, &zero);
	if (!wl || i >= wl->count)
		return 1;
	/* The bound, on the register the index is taken from (clang would otherwise check
	 * a copy): VIGIL_WATCH_MAX is a power of two. */
	__u64 at = i;
	asm volatile("%0 &= %1" : "+r"(at) : "i"(VIGIL_WATCH_MAX - 1));
	struct vigil_watch_rule *w = &wl->rules[at];
	if (c->leaf.len < w->min_len || c->leaf.len > w->max_len ||
	    !words_match(c->leaf.w, w->prefix, w->prefix_mask))
		return 0;
	if (w->suffix_mask) {
		if (!c->have_suffix) {
			c->suffix = name_suffix(&c->leaf);
			c->have_suffix = true;
		}
		if ((c->suffix & w->suffix_mask) != w->suffix)
			return 0;
	}
	if (w->parent_mask[0] | w->parent_mask[1]) {
		if (!c->have_parent) {
			struct dentry *d = c->dentry;
			if (!dentry_name(BPF_CORE_READ(d, d_parent), &c->parent))
				return 1;
			c->have_parent = true;
		}
		if (!words_match(c->parent.w, w->parent, w->parent_mask))
			return 0;
	}
	c->hit = true;
	return 1;
}

/* Whether the file a read-only open returned (fd) is on the watch list. The kernel
 * checks the file's name and its parent directory's name against each pattern (bounded
 * masked compares, no path walk); user space matches the whole path of those reported. */
static __always_inline bool watched_read(struct task_struct *task, long fd)
{
	__u32 zero = 0;
	struct vigil_watch *wl = bpf_map_lookup_elem(&vigil_watch, &zero);
	if (!wl || wl->count == 0)
		return false;
	/* Every read-only open of the host comes here: the task's descriptor table is
	 * reached with direct loads (the verifier makes them faulting-safe), not a helper
	 * call per pointer as fd_file does; the slot, read by address, is a helper call. */
	struct fdtable *fdt = task->files->fdt;
	if ((unsigned long)fd >= fdt->max_fds)
		return false;
	struct file **fds = fdt->fd;
	struct file *f = NULL;
	bpf_probe_read_kernel(&f, sizeof(f), (void *)((unsigned long)fds + 8 * (fd & 0xffffff)));
	if (!f)
		return false;
	struct watch_ctx c = {};
	c.dentry = BPF_CORE_READ(f, f_path.dentry);
	if (!dentry_name(c.dentry, &c.leaf))
		return false;
	/* Most names fail here: no rule takes their first byte at their length. */
	__u32 len = c.leaf.len < 63 ? c.leaf.len : 63;
	if (!((wl->first_len[c.leaf.w[0] & 0xff] >> len) & 1))
		return false;
	bpf_loop(VIGIL_WATCH_MAX, watch_step, &c, 0);
	return c.hit && (BPF_CORE_READ(f, f_mode) & FMODE_READ) && !is_filtered(task);
}

